#!/bin/bash
# jobfleet monitoring host: runs the autoscaler daemon (release @@RELEASE@@) against ASG @@ASG_NAME@@.
# Rendered by infra/userdata.py; holds no secret (the Redis AUTH token is read from SSM at start).
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
# the autoscaler's metrics bind to this host's VPC address only (the Grafana host's Prometheus scrapes it)
printf 'JOBFLEET_METRICS_ADDR=%s\n' "$(local_ipv4)" >> /etc/jobfleet/jobfleet.env

cat > /etc/systemd/system/jobfleet-autoscaler.service <<'UNIT'
[Unit]
Description=jobfleet autoscaler (sizes the worker Auto Scaling group from queue state)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=jobfleet
Group=jobfleet
WorkingDirectory=/opt/jobfleet/current
EnvironmentFile=/etc/jobfleet/jobfleet.env
StandardOutput=append:/var/log/jobfleet/autoscaler.log
StandardError=inherit
ExecStart=/opt/jobfleet/current/.venv/bin/python -m autoscaler --backend aws
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
systemctl enable --now jobfleet-autoscaler.service
log "monitoring host ready"
