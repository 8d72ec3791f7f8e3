#!/bin/bash
# jobfleet Grafana host: Grafana, Prometheus (EC2 discovery by tag), Tempo and the OpenTelemetry collector as
# systemd services from the vendors' release archives in the artifact bucket (sha256 pinned by infra/releases.py
# and checked again here; nothing is pulled from the internet at boot), provisioned from bundle @@RELEASE@@.
# Rendered by infra/userdata.py; holds no secret: the Grafana admin password is read from SSM.
set -euo pipefail
exec > >(tee -a /var/log/jobfleet-bootstrap.log) 2>&1

readonly ARTIFACT_BUCKET=@@ARTIFACT_BUCKET@@
readonly ARTIFACT_KEY=@@ARTIFACT_KEY@@
AWS_REGION=@@AWS_REGION@@
readonly OBS=/opt/jobfleet/observability
readonly STACK=@@STACK@@

@@COMMON@@

# install_archive DEST KEY SHA256 STRIP BINARY: download s3://ARTIFACT_BUCKET/KEY, refuse it unless its sha256
# is SHA256, unpack it into DEST (dropping STRIP leading path parts) and check that DEST/BINARY runs.
install_archive() {
  local dest="$1" key="$2" sha="$3" strip="$4" binary="$5" tmp
  tmp="$(mktemp)"
  retry aws s3 cp --only-show-errors "s3://${ARTIFACT_BUCKET}/${key}" "$tmp"
  if ! printf '%s  %s\n' "$sha" "$tmp" | sha256sum -c --quiet -; then
    log "${key}: sha256 mismatch, refusing it"
    rm -f "$tmp"
    return 1
  fi
  rm -rf "${dest}.new"
  mkdir -p "${dest}.new"
  tar -xzf "$tmp" -C "${dest}.new" --strip-components="$strip" --no-same-owner
  rm -f "$tmp"
  if [ ! -x "${dest}.new/${binary}" ]; then
    log "${key}: ${binary} missing from the archive"
    return 1
  fi
  chown -R root:root "${dest}.new"
  rm -rf "$dest"
  mv "${dest}.new" "$dest"
  log "installed ${dest}"
}

# logs leave the host (CloudWatch Logs), so they outlive a terminated instance. The dnf installs of this host
# (amazon-cloudwatch-agent) come from the AL2023 repositories, which AL2023 locks to the AMI's release version
# and serves from S3 in the region.
ship_logs <<'CWAGENT' || log "log shipping could not be set up; logs stay on the host"
@@CW_AGENT_CONFIG@@
CWAGENT

install_bundle "$ARTIFACT_BUCKET" "$ARTIFACT_KEY" "$OBS"
@@INSTALL_ARCHIVES@@
# Prometheus discovers this stack's hosts by the tags jobfleet:role and jobfleet:stack; the file names
# the stack and region as the placeholders JOBFLEET_STACK and AWS_REGION.
sed -i -e "s/JOBFLEET_STACK/${STACK}/g" -e "s/region: AWS_REGION/region: ${AWS_REGION}/g" \
  "${OBS}/observability/prometheus/prometheus-aws.yml"
# Grafana's dashboard provider reads this path (observability/grafana/provisioning/dashboards); the unit
# bind-mounts the bundle's dashboards onto it.
mkdir -p /var/lib/grafana/dashboards/jobfleet /etc/jobfleet

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
      path: /var/lib/jobfleet/tempo/wal
    local:
      path: /var/lib/jobfleet/tempo/blocks
TEMPO

install -m 0755 /dev/null /usr/local/bin/jobfleet-fetch-secrets
cat > /usr/local/bin/jobfleet-fetch-secrets <<'FETCH'
@@FETCH_SCRIPT@@
FETCH

# Every service runs as its own transient system user (DynamicUser) that can write only its StateDirectory.
cat > /etc/systemd/system/jobfleet-prometheus.service <<'UNIT'
[Unit]
Description=Prometheus @@PROMETHEUS_VERSION@@
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
DynamicUser=yes
StateDirectory=jobfleet/prometheus
ExecStart=@@PROMETHEUS_BIN@@ \
  --config.file=/opt/jobfleet/observability/observability/prometheus/prometheus-aws.yml \
  --storage.tsdb.path=/var/lib/jobfleet/prometheus --storage.tsdb.retention.time=15d --web.listen-address=:9090
Restart=always
RestartSec=5
NoNewPrivileges=yes
ProtectSystem=strict
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT

cat > /etc/systemd/system/jobfleet-otelcol.service <<'UNIT'
[Unit]
Description=OpenTelemetry collector (contrib) @@OTELCOL_VERSION@@
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
DynamicUser=yes
StateDirectory=jobfleet/otelcol
ExecStart=@@OTELCOL_BIN@@ --config=/opt/jobfleet/observability/observability/otel/collector.yaml
Restart=always
RestartSec=5
NoNewPrivileges=yes
ProtectSystem=strict
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT

cat > /etc/systemd/system/jobfleet-tempo.service <<'UNIT'
[Unit]
Description=Tempo trace store @@TEMPO_VERSION@@
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
DynamicUser=yes
StateDirectory=jobfleet/tempo
ExecStart=@@TEMPO_BIN@@ -config.file=/etc/jobfleet/tempo.yaml
Restart=always
RestartSec=5
NoNewPrivileges=yes
ProtectSystem=strict
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT

cat > /etc/systemd/system/jobfleet-grafana.service <<'UNIT'
[Unit]
Description=Grafana @@GRAFANA_VERSION@@
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
DynamicUser=yes
StateDirectory=jobfleet/grafana
# The password is read (with retries, as root) before every start; a failure restarts the unit, it never stays down.
ExecStartPre=+/usr/local/bin/jobfleet-fetch-secrets /run/jobfleet-secrets/grafana.env @@PASSWORD_ASSIGNMENT@@
EnvironmentFile=-/run/jobfleet-secrets/grafana.env
Environment=GF_SECURITY_ADMIN_USER=admin GF_USERS_ALLOW_SIGN_UP=false GF_AUTH_ANONYMOUS_ENABLED=false
Environment=GF_ANALYTICS_REPORTING_ENABLED=false GF_SERVER_HTTP_PORT=3000
Environment=GF_SERVER_HTTP_ADDR=@@GRAFANA_LISTEN@@
Environment=GF_PATHS_PROVISIONING=/opt/jobfleet/observability/observability/grafana/provisioning
Environment=GF_PATHS_DATA=/var/lib/jobfleet/grafana GF_PATHS_LOGS=/var/lib/jobfleet/grafana/log
Environment=GF_PATHS_PLUGINS=/var/lib/jobfleet/grafana/plugins
BindReadOnlyPaths=/opt/jobfleet/observability/observability/grafana/dashboards:/var/lib/grafana/dashboards/jobfleet
WorkingDirectory=@@GRAFANA_HOME@@
ExecStart=@@GRAFANA_BIN@@ server --homepath=@@GRAFANA_HOME@@
Restart=always
RestartSec=5
NoNewPrivileges=yes
ProtectSystem=strict
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable --now jobfleet-prometheus.service jobfleet-tempo.service jobfleet-otelcol.service \
  jobfleet-grafana.service
log "grafana host ready"
