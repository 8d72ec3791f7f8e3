# ---- launch check: the launch lifecycle hook is completed CONTINUE only after a passing self-check ----
readonly ASG_NAME=@@ASG_NAME@@
readonly LAUNCH_HOOK=@@LAUNCH_HOOK@@
readonly SELF_CHECK_SECONDS=@@SELF_CHECK_SECONDS@@
readonly METRICS_PORT=@@METRICS_PORT@@
readonly IMDS=http://169.254.169.254/latest

imds() {
  local token
  token="$(curl -sf -X PUT "${IMDS}/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')"
  curl -sf -H "X-aws-ec2-metadata-token: ${token}" "${IMDS}/$1"
}

# complete_launch CONTINUE|ABANDON: answer the launch lifecycle hook (ABANDON = the ASG replaces this host).
# An instance launched before the hook existed has no pending action: that is logged, not fatal.
complete_launch() {
  local result="$1" instance_id
  instance_id="$(imds meta-data/instance-id)" || { log "launch check: no instance id from IMDS"; return 1; }
  if retry aws autoscaling complete-lifecycle-action --auto-scaling-group-name "$ASG_NAME" \
      --lifecycle-hook-name "$LAUNCH_HOOK" --instance-id "$instance_id" --lifecycle-action-result "$result"; then
    log "launch lifecycle action completed with ${result}"
  else
    log "launch lifecycle action ${result} not accepted (no pending action?)"
  fi
}

# self_check UNIT...: every unit is active and has not restarted, and the host's metrics endpoint answers.
self_check() {
  local deadline=$((SECONDS + SELF_CHECK_SECONDS)) unit restarts addr
  sleep "${SELF_CHECK_SETTLE:-10}"
  for unit in "$@"; do
    if ! systemctl is-active --quiet "$unit"; then
      log "self-check: ${unit} is not active"
      return 1
    fi
    restarts="$(systemctl show -p NRestarts --value "$unit")"
    if [ "${restarts:-0}" != "0" ]; then
      log "self-check: ${unit} restarted ${restarts} time(s)"
      return 1
    fi
  done
  addr="$(sed -n 's/^JOBFLEET_METRICS_ADDR=//p' "${JOBFLEET_ENV_FILE:-/etc/jobfleet/jobfleet.env}" | tail -n 1)"
  until curl -sf -o /dev/null "http://${addr:-127.0.0.1}:${METRICS_PORT}/metrics"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "self-check: metrics endpoint ${addr:-127.0.0.1}:${METRICS_PORT} did not answer"
      return 1
    fi
    sleep 2
  done
  log "self-check passed"
}

on_boot_failure() {
  log "bootstrap failed at line ${1:-?}; abandoning the launch"
  complete_launch ABANDON || true
}
set -E
trap 'on_boot_failure "$LINENO"' ERR
# ---- end launch check ----
