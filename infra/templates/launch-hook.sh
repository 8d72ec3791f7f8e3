#!/bin/bash
# jobfleet-launch-hook: the warm-pool side of a worker host (idles without a warm pool).
#   --in-service  exit 0 unless the target lifecycle state is Warmed:* (ExecCondition of the worker slots)
#   (no flag)     at every boot: into the pool (Warmed:*) CONTINUE, the workers stay stopped; into service
#                 wait for the slots and run the launch check's self-check, then CONTINUE, or ABANDON and
#                 exit 2. Then on a return into the pool (reuse): stop the slots, CONTINUE again.
set -euo pipefail

# shellcheck disable=SC2034  # read by the sourced functions
readonly ASG_NAME=@@ASG_NAME@@ LAUNCH_HOOK=@@HOOK_NAME@@ SLOTS=@@SLOTS@@ SELF_CHECK_SECONDS=@@SELF_CHECK_SECONDS@@ \
  METRICS_PORT=@@METRICS_PORT@@ LOG_TAG=jobfleet-launch-hook
export AWS_REGION=@@AWS_REGION@@

@@HELPERS@@

# imds, complete_launch, self_check (written by the user data's launch check)
# shellcheck source=/dev/null
. @@LIB@@

target_state() {
  local state="" attempt
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    state="$(imds meta-data/autoscaling/target-lifecycle-state || true)"
    if [ -n "$state" ]; then
      break
    fi
    sleep "$attempt"
  done
  printf '%s' "$state"
}

# wait_for_slots UNIT...: until every unit is active, at most SELF_CHECK_SECONDS.
wait_for_slots() {
  local deadline=$((SECONDS + SELF_CHECK_SECONDS)) unit
  for unit in "$@"; do
    until systemctl is-active --quiet "$unit"; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        log "self-check: ${unit} did not become active"
        return 1
      fi
      sleep 2
    done
  done
}

if [ -z "$LAUNCH_HOOK" ]; then
  [ "${1:-}" = "--in-service" ] && exit 0
  exec sleep infinity
fi

if [ "${1:-}" = "--in-service" ]; then
  case "$(target_state)" in
    Warmed:*) exit 1 ;;
    *) exit 0 ;;
  esac
fi

last="$(target_state)"
log "boot with target state ${last:-unknown}"
case "$last" in
  Warmed:*) complete_launch CONTINUE ;;
  *)
    units=()
    for slot in $(seq 1 "$SLOTS"); do units+=("jobfleet-worker@${slot}.service"); done
    if ! { wait_for_slots "${units[@]}" && self_check "${units[@]}"; }; then
      complete_launch ABANDON
      exit 2
    fi
    complete_launch CONTINUE
    ;;
esac
while true; do
  sleep 5
  state="$(imds meta-data/autoscaling/target-lifecycle-state || true)"
  if [ -n "$state" ] && [ "$state" != "$last" ]; then
    case "$state" in
      Warmed:*)
        log "going back into the warm pool; stopping worker slots"
        systemctl stop 'jobfleet-worker@*.service' || true
        complete_launch CONTINUE
        ;;
    esac
    last="$state"
  fi
done
