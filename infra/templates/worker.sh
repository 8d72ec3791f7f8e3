#!/bin/bash
# jobfleet worker host: installs release @@RELEASE@@ and runs @@SLOTS@@ RQ worker slot(s) under systemd.
# Rendered by infra/userdata.py; holds no secret (the Redis AUTH token is read from SSM at start).
set -euo pipefail
exec > >(tee -a /var/log/jobfleet-bootstrap.log) 2>&1

readonly ARTIFACT_BUCKET=@@ARTIFACT_BUCKET@@
readonly ARTIFACT_KEY=@@ARTIFACT_KEY@@
AWS_REGION=@@AWS_REGION@@
readonly SLOTS=@@SLOTS@@
readonly WARM_POOL=@@WARM_POOL@@

@@COMMON@@

@@LAUNCH_CHECK@@

# logs leave the host (CloudWatch Logs), so they outlive a terminated instance
ship_logs <<'CWAGENT' || log "log shipping could not be set up; logs stay on the host"
@@CW_AGENT_CONFIG@@
CWAGENT

install_release

cat > /etc/tmpfiles.d/jobfleet.conf <<'TMPFILES'
d /run/jobfleet 0755 root root -
d /run/jobfleet/metrics 0770 jobfleet jobfleet -
TMPFILES
systemd-tmpfiles --create /etc/tmpfiles.d/jobfleet.conf

write_env /etc/jobfleet/jobfleet.env <<'ENVFILE'
@@ENV_FILE@@
ENVFILE
# metrics bind to this host's VPC address only (the monitoring host scrapes it; nothing else can reach it)
printf 'JOBFLEET_METRICS_ADDR=%s\n' "$(local_ipv4)" >> /etc/jobfleet/jobfleet.env

cat > /etc/systemd/system/jobfleet-worker@.service <<'UNIT'
[Unit]
Description=jobfleet RQ worker, slot %i
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=jobfleet
Group=jobfleet
WorkingDirectory=/opt/jobfleet/current
EnvironmentFile=/etc/jobfleet/jobfleet.env
# warm pool: no worker slot starts on a boot into the warm pool
ExecCondition=/usr/local/bin/jobfleet-launch-hook --in-service
StandardOutput=append:/var/log/jobfleet/worker.log
StandardError=inherit
ExecStart=/opt/jobfleet/current/.venv/bin/python -m worker
# SIGTERM to the worker only: it finishes (or re-queues) its job, then exits.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=@@STOP_TIMEOUT@@
Restart=always
RestartSec=2
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT

install -m 0755 /dev/null /usr/local/bin/jobfleet-drain
cat > /usr/local/bin/jobfleet-drain <<'DRAIN'
@@DRAIN_SCRIPT@@
DRAIN

cat > /etc/systemd/system/jobfleet-drain.service <<'UNIT'
[Unit]
Description=jobfleet drain: stop workers gracefully when the ASG terminates this instance
After=network-online.target

[Service]
Type=simple
ExecStart=/usr/local/bin/jobfleet-drain
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

# ---- warm pool (issue 14): the app is installed above on the first boot only, i.e. when the instance
# enters the warm pool; on every boot jobfleet-launch-hook completes the launch lifecycle action ----
install -m 0755 /dev/null /usr/local/bin/jobfleet-launch-hook
cat > /usr/local/bin/jobfleet-launch-hook <<'LAUNCHHOOK'
@@LAUNCH_HOOK_SCRIPT@@
LAUNCHHOOK

cat > /etc/systemd/system/jobfleet-launch-hook.service <<'UNIT'
[Unit]
Description=jobfleet launch hook: warm-pool entry keeps workers stopped; service entry after a passing self-check
After=network-online.target jobfleet-worker@1.service

[Service]
Type=simple
ExecStart=/usr/local/bin/jobfleet-launch-hook
Restart=on-failure
RestartSec=5
# exit 2: the self-check failed and the launch was abandoned (the ASG replaces the host); do not retry
RestartPreventExitStatus=2

[Install]
WantedBy=multi-user.target
UNIT
# ---- end warm pool ----

# Spot interruption watcher: on the 2-minute notice it stops the slots taking jobs and requeues the jobs that
# cannot finish in time; on a rebalance recommendation it stops taking jobs (worker/spot.py).
cat > /etc/systemd/system/jobfleet-spot.service <<'UNIT'
[Unit]
Description=jobfleet spot interruption watcher
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
EnvironmentFile=/etc/jobfleet/jobfleet.env
WorkingDirectory=/opt/jobfleet/current
ExecStart=/opt/jobfleet/current/.venv/bin/python -m worker.spot
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
units=()
for slot in $(seq 1 "$SLOTS"); do units+=("jobfleet-worker@${slot}.service"); done
systemctl enable --now "${units[@]}" jobfleet-drain.service jobfleet-spot.service
if [ "$WARM_POOL" = "1" ]; then
  # With a warm pool, jobfleet-launch-hook answers the launch hook on every boot: into the pool once the
  # app is installed (the worker slots stay stopped), into service once the slots pass the same self-check.
  trap - ERR
  systemctl enable --now jobfleet-launch-hook.service
  log "worker host installed (warm pool); jobfleet-launch-hook answers the launch lifecycle hook"
  exit 0
fi
if ! self_check "${units[@]}"; then
  trap - ERR
  complete_launch ABANDON
  exit 1
fi
trap - ERR
complete_launch CONTINUE
log "worker host ready with ${SLOTS} slot(s)"
