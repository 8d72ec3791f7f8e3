// Swagger UI for /openapi.json, served from the dashboard itself (no CDN, strict CSP: no inline script).
"use strict";
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
