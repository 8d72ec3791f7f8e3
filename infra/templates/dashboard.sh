#!/bin/bash
# jobfleet dashboard host: runs the dashboard (release @@RELEASE@@) on port @@PORT@@.
# Rendered by infra/userdata.py; holds no secret: the dashboard token is read from SSM at each start.
set -euo pipefail
exec > >(tee -a /var/log/jobfleet-bootstrap.log) 2>&1

readonly ARTIFACT_BUCKET=@@ARTIFACT_BUCKET@@
readonly ARTIFACT_KEY=@@ARTIFACT_KEY@@
AWS_REGION=@@AWS_REGION@@

@@COMMON@@

# logs leave the host (CloudWatch Logs), so they outlive a terminated instance
ship_logs <<'CWAGENT' || log "log shipping could not be set up; logs stay on the host"
@@CW_AGENT_CONFIG@@
CWAGENT

install_release

write_env /etc/jobfleet/jobfleet.env <<'ENVFILE'
@@ENV_FILE@@
ENVFILE

install -m 0755 /dev/null /usr/local/bin/jobfleet-fetch-secrets
cat > /usr/local/bin/jobfleet-fetch-secrets <<'FETCH'
@@FETCH_SCRIPT@@
FETCH

cat > /etc/systemd/system/jobfleet-dashboard.service <<'UNIT'
[Unit]
Description=jobfleet dashboard
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=jobfleet
Group=jobfleet
WorkingDirectory=/opt/jobfleet/current
EnvironmentFile=/etc/jobfleet/jobfleet.env
# The token is read (with retries) before every start; if SSM stays unreachable the unit restarts and tries again.
ExecStartPre=+/usr/local/bin/jobfleet-fetch-secrets /run/jobfleet-secrets/dashboard.env @@TOKEN_ASSIGNMENT@@
EnvironmentFile=-/run/jobfleet-secrets/dashboard.env
StandardOutput=append:/var/log/jobfleet/dashboard.log
StandardError=inherit
ExecStart=/opt/jobfleet/current/.venv/bin/python -m dashboard
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=always
RestartSec=5
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable --now jobfleet-dashboard.service
log "dashboard host ready"
