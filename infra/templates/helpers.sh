# ---- helpers: log lines tagged with LOG_TAG (default jobfleet-bootstrap), retry with a linear backoff ----
log() { printf '%s %s: %s\n' "$(date -u +%FT%TZ)" "${LOG_TAG:-jobfleet-bootstrap}" "$*"; }

retry() {
  local attempt=1
  until "$@"; do
    if [ "$attempt" -ge 5 ]; then
      log "giving up after $attempt attempts: $*"
      return 1
    fi
    sleep $((attempt * 5))
    attempt=$((attempt + 1))
  done
}
# ---- end helpers ----
