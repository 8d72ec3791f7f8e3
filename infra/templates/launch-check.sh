# ---- launch check: the launch lifecycle hook is completed CONTINUE only after a passing self-check ----
# shellcheck disable=SC2034  # read by the functions sourced below
readonly ASG_NAME=@@ASG_NAME@@ LAUNCH_HOOK=@@LAUNCH_HOOK@@ SELF_CHECK_SECONDS=@@SELF_CHECK_SECONDS@@ \
  METRICS_PORT=@@METRICS_PORT@@
# imds, complete_launch, self_check: a file jobfleet-launch-hook and jobfleet-drain source too
mkdir -p "$(dirname @@LIB@@)"
cat > @@LIB@@ <<'SELFCHECK'
@@SELF_CHECK_LIB@@
SELFCHECK
# shellcheck source=/dev/null
. @@LIB@@

on_boot_failure() {
  log "bootstrap failed at line ${1:-?}; abandoning the launch"
  complete_launch ABANDON || true
}
set -E
trap 'on_boot_failure "$LINENO"' ERR
# ---- end launch check ----
