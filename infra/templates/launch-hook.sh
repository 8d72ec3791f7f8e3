#!/bin/bash
# jobfleet-launch-hook: the warm-pool side of a worker host (does nothing without a warm pool).
#   --in-service  exit 0 unless the ASG's target lifecycle state is Warmed:* (ExecCondition of the worker
#                 slots: they never start on a boot into the warm pool)
#   (no flag)     at every boot: complete the launch lifecycle action (into the pool: the app is installed,
#                 the workers stay stopped; into service: the workers are up), then watch for the instance
#                 going back into the pool on scale-in (reuse): stop the slots gracefully, complete again.
set -euo pipefail

readonly ASG_NAME=@@ASG_NAME@@
readonly HOOK_NAME=@@HOOK_NAME@@
export AWS_REGION=@@AWS_REGION@@
readonly IMDS=http://169.254.169.254/latest

imds() {
  local token
  token="$(curl -sf -X PUT "${IMDS}/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')"
  curl -sf -H "X-aws-ec2-metadata-token: ${token}" "${IMDS}/$1"
}

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

complete_launch() {
  aws autoscaling complete-lifecycle-action \
    --auto-scaling-group-name "$ASG_NAME" \
    --lifecycle-hook-name "$HOOK_NAME" \
    --instance-id "$(imds meta-data/instance-id)" \
    --lifecycle-action-result CONTINUE \
    || echo "jobfleet-launch-hook: no launch action pending for $1"
}

if [ -z "$HOOK_NAME" ]; then
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
echo "jobfleet-launch-hook: boot with target state ${last:-unknown}"
complete_launch "$last"
while true; do
  sleep 5
  state="$(imds meta-data/autoscaling/target-lifecycle-state || true)"
  if [ -n "$state" ] && [ "$state" != "$last" ]; then
    case "$state" in
      Warmed:*)
        echo "jobfleet-launch-hook: going back into the warm pool; stopping worker slots"
        systemctl stop 'jobfleet-worker@*.service' || true
        complete_launch "$state"
        ;;
    esac
    last="$state"
  fi
done
