# ---- imds: instance metadata through IMDSv2 (a session token per call) ----
readonly IMDS=http://169.254.169.254/latest

imds() {
  local token
  token="$(curl -sf -X PUT "${IMDS}/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')"
  curl -sf -H "X-aws-ec2-metadata-token: ${token}" "${IMDS}/$1"
}
# ---- end imds ----
