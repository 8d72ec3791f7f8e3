"""jobfleet dashboard: REST API and single-page web UI over the fleet's Redis (run with ``python -m dashboard``)."""
