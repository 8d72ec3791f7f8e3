#!/bin/bash
# jobfleet-fetch-secrets: reads SSM SecureString parameters into a root-only environment file.
# Usage: jobfleet-fetch-secrets OUTPUT_FILE VAR=PARAMETER_NAME...
set -euo pipefail
export AWS_REGION=@@AWS_REGION@@

out="$1"
shift
tmp="$(mktemp)"
chmod 0600 "$tmp"
for pair in "$@"; do
  var="${pair%%=*}"
  name="${pair#*=}"
  value="$(aws ssm get-parameter --with-decryption --name "$name" --query Parameter.Value --output text)"
  printf '%s=%s\n' "$var" "$value" >> "$tmp"
done
mkdir -p "$(dirname "$out")"
mv "$tmp" "$out"
