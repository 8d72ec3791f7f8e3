#!/bin/bash
# jobfleet Grafana host: Grafana, Prometheus (EC2 discovery of the stack's hosts by tag), Tempo and the
# OpenTelemetry collector as pinned containers, provisioned from bundle @@RELEASE@@ (observability/).
# Rendered by infra/userdata.py; holds no secret: the Grafana admin password is read from SSM.
set -euo pipefail
exec > >(tee -a /var/log/jobfleet-bootstrap.log) 2>&1

readonly ARTIFACT_BUCKET=@@ARTIFACT_BUCKET@@
readonly ARTIFACT_KEY=@@ARTIFACT_KEY@@
AWS_REGION=@@AWS_REGION@@
readonly OBS=/opt/jobfleet/observability
readonly STACK=@@STACK@@

@@COMMON@@

# logs leave the host (CloudWatch Logs), so they outlive a terminated instance
ship_logs <<'CWAGENT' || log "log shipping could not be set up; logs stay on the host"
@@CW_AGENT_CONFIG@@
CWAGENT

retry dnf install -y -q docker
systemctl enable --now docker.service
install_bundle "$ARTIFACT_BUCKET" "$ARTIFACT_KEY" "$OBS"
# Prometheus discovers this stack's hosts by the tags jobfleet:role and jobfleet:stack; the file names
# the stack and region as the placeholders JOBFLEET_STACK and AWS_REGION.
sed -i -e "s/JOBFLEET_STACK/${STACK}/g" -e "s/region: AWS_REGION/region: ${AWS_REGION}/g" \
  "${OBS}/observability/prometheus/prometheus-aws.yml"
mkdir -p /var/lib/jobfleet/prometheus /var/lib/jobfleet/grafana /var/lib/jobfleet/tempo /etc/jobfleet
chown 65534:65534 /var/lib/jobfleet/prometheus
chown 472:0 /var/lib/jobfleet/grafana
chown 10001:10001 /var/lib/jobfleet/tempo

# Tempo stores the traces the collector forwards (OTLP gRPC on 127.0.0.1:4417); Grafana queries :3200.
cat > /etc/jobfleet/tempo.yaml <<'TEMPO'
stream_over_http_enabled: true
server:
  http_listen_address: 127.0.0.1
  http_listen_port: 3200
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: 9096
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:4417
compactor:
  compaction:
    block_retention: 72h
storage:
  trace:
    backend: local
    wal:
      path: /var/tempo/wal
    local:
      path: /var/tempo/blocks
TEMPO

install -m 0755 /dev/null /usr/local/bin/jobfleet-fetch-secrets
cat > /usr/local/bin/jobfleet-fetch-secrets <<'FETCH'
@@FETCH_SCRIPT@@
FETCH

cat > /etc/systemd/system/jobfleet-prometheus.service <<'UNIT'
[Unit]
Description=Prometheus (container)
Requires=docker.service
After=docker.service

[Service]
ExecStartPre=-/usr/bin/docker rm -f jobfleet-prometheus
ExecStart=/usr/bin/docker run --rm --name jobfleet-prometheus --network host \
  -v /opt/jobfleet/observability/observability/prometheus:/etc/prometheus:ro \
  -v /var/lib/jobfleet/prometheus:/prometheus \
  @@PROMETHEUS_IMAGE@@ --config.file=/etc/prometheus/prometheus-aws.yml \
  --storage.tsdb.path=/prometheus --storage.tsdb.retention.time=15d --web.listen-address=:9090
ExecStop=/usr/bin/docker stop jobfleet-prometheus
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

cat > /etc/systemd/system/jobfleet-otelcol.service <<'UNIT'
[Unit]
Description=OpenTelemetry collector (container)
Requires=docker.service
After=docker.service

[Service]
ExecStartPre=-/usr/bin/docker rm -f jobfleet-otelcol
ExecStart=/usr/bin/docker run --rm --name jobfleet-otelcol --network host \
  -v /opt/jobfleet/observability/observability/otel/collector.yaml:/etc/otelcol-contrib/config.yaml:ro \
  @@OTELCOL_IMAGE@@
ExecStop=/usr/bin/docker stop jobfleet-otelcol
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

cat > /etc/systemd/system/jobfleet-tempo.service <<'UNIT'
[Unit]
Description=Tempo trace store (container)
Requires=docker.service
After=docker.service

[Service]
ExecStartPre=-/usr/bin/docker rm -f jobfleet-tempo
ExecStart=/usr/bin/docker run --rm --name jobfleet-tempo --network host \
  -v /etc/jobfleet/tempo.yaml:/etc/tempo.yaml:ro -v /var/lib/jobfleet/tempo:/var/tempo \
  @@TEMPO_IMAGE@@ -config.file=/etc/tempo.yaml
ExecStop=/usr/bin/docker stop jobfleet-tempo
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

cat > /etc/systemd/system/jobfleet-grafana.service <<'UNIT'
[Unit]
Description=Grafana (container)
Requires=docker.service
After=docker.service network-online.target

[Service]
# The password is read (with retries) before every start; a failure restarts the unit, it never stays down.
ExecStartPre=/usr/local/bin/jobfleet-fetch-secrets /run/jobfleet-secrets/grafana.env @@PASSWORD_ASSIGNMENT@@
ExecStartPre=-/usr/bin/docker rm -f jobfleet-grafana
ExecStart=/usr/bin/docker run --rm --name jobfleet-grafana --network host \
  --env-file /run/jobfleet-secrets/grafana.env \
  -e GF_SECURITY_ADMIN_USER=admin -e GF_USERS_ALLOW_SIGN_UP=false -e GF_AUTH_ANONYMOUS_ENABLED=false \
  -e GF_ANALYTICS_REPORTING_ENABLED=false -e GF_SERVER_HTTP_PORT=3000 \
  -e GF_SERVER_HTTP_ADDR=@@GRAFANA_LISTEN@@ \
  -v /opt/jobfleet/observability/observability/grafana/provisioning:/etc/grafana/provisioning:ro \
  -v /opt/jobfleet/observability/observability/grafana/dashboards:/var/lib/grafana/dashboards/jobfleet:ro \
  -v /var/lib/jobfleet/grafana:/var/lib/grafana \
  @@GRAFANA_IMAGE@@
ExecStop=/usr/bin/docker stop jobfleet-grafana
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable --now jobfleet-prometheus.service jobfleet-tempo.service jobfleet-otelcol.service \
  jobfleet-grafana.service
log "grafana host ready"
