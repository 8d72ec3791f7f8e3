# ---- self-check (needs log, retry, ASG_NAME, LAUNCH_HOOK, SELF_CHECK_SECONDS, METRICS_PORT) ----
# complete_launch CONTINUE|ABANDON: answer the launch lifecycle hook (ABANDON = the ASG replaces this host).
# No pending action (an instance launched before the hook existed) is logged, not fatal.
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
# ---- end self-check ----
