#!/bin/bash
# jobfleet-fetch-secrets: reads SSM SecureString parameters into a root-only environment file.
# Usage: jobfleet-fetch-secrets OUTPUT_FILE VAR=PARAMETER_NAME...
# Each read is retried with exponential backoff (1, 2, 4 ... 30 s, about 3 minutes in all); the unit that
# runs this as ExecStartPre restarts (Restart=always) if it still fails, so one SSM error never leaves
# the service down.
set -euo pipefail
export AWS_REGION=@@AWS_REGION@@
readonly ATTEMPTS="${JOBFLEET_FETCH_ATTEMPTS:-10}"

fetch() {
  local name="$1" attempt=1 delay=1 value
  until value="$(aws ssm get-parameter --with-decryption --name "$name" --query Parameter.Value --output text)"; do
    if [ "$attempt" -ge "$ATTEMPTS" ]; then
      echo "jobfleet-fetch-secrets: cannot read ${name} after ${attempt} attempts" >&2
      return 1
    fi
    echo "jobfleet-fetch-secrets: reading ${name} failed (attempt ${attempt}); retrying in ${delay} s" >&2
    sleep "$delay"
    attempt=$((attempt + 1))
    delay=$((delay * 2 > 30 ? 30 : delay * 2))
  done
  printf '%s' "$value"
}

out="$1"
shift
tmp="$(mktemp)"
chmod 0600 "$tmp"
for pair in "$@"; do
  var="${pair%%=*}"
  name="${pair#*=}"
  value="$(fetch "$name")"
  printf '%s=%s\n' "$var" "$value" >> "$tmp"
done
mkdir -p "$(dirname "$out")"
mv "$tmp" "$out"
