#!/bin/bash
# jobfleet-drain: waits until the Auto Scaling group marks this instance for termination (IMDSv2
# target-lifecycle-state), stops every worker slot gracefully (SIGTERM, up to their stop timeout),
# then completes the termination lifecycle action so the ASG may terminate the instance.
set -euo pipefail

readonly ASG_NAME=@@ASG_NAME@@
readonly HOOK_NAME=@@HOOK_NAME@@
export AWS_REGION=@@AWS_REGION@@

# shellcheck source=/dev/null
. @@LIB@@  # imds (written by the user data's launch check)

while true; do
  state="$(imds meta-data/autoscaling/target-lifecycle-state || true)"
  if [ "$state" = "Terminated" ]; then
    break
  fi
  sleep 5
done

echo "jobfleet-drain: instance is terminating; stopping worker slots"
systemctl stop 'jobfleet-worker@*.service' || true
instance_id="$(imds meta-data/instance-id)"
aws autoscaling complete-lifecycle-action \
  --auto-scaling-group-name "$ASG_NAME" \
  --lifecycle-hook-name "$HOOK_NAME" \
  --instance-id "$instance_id" \
  --lifecycle-action-result CONTINUE
echo "jobfleet-drain: lifecycle action completed"
sleep infinity
