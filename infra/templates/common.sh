# ---- common: install the release bundle (rendered into every host's user data) ----
export AWS_REGION AWS_DEFAULT_REGION="$AWS_REGION"
readonly RELEASE_ROOT=/opt/jobfleet

@@HELPERS@@

# install_bundle BUCKET KEY DEST: download s3://BUCKET/KEY and unpack it into DEST (idempotent).
install_bundle() {
  local bucket="$1" key="$2" dest="$3" tmp
  tmp="$(mktemp)"
  retry aws s3 cp --only-show-errors "s3://${bucket}/${key}" "$tmp"
  mkdir -p "$dest"
  tar -xzf "$tmp" -C "$dest"
  rm -f "$tmp"
}

# install_release: unpack the app bundle into its own release dir, build its venv, point "current" at it.
install_release() {
  local name release wheels
  name="$(basename "$ARTIFACT_KEY" .tar.gz)"
  release="${RELEASE_ROOT}/releases/${name}"
  retry dnf install -y -q python3.11 python3.11-pip
  id jobfleet >/dev/null 2>&1 || useradd --system --user-group --home-dir "$RELEASE_ROOT" --shell /sbin/nologin jobfleet
  install_bundle "$ARTIFACT_BUCKET" "$ARTIFACT_KEY" "$release"
  python3.11 -m venv "${release}/.venv"
  # offline, from the bundle's wheelhouse for this CPU, every file checked against its pinned hash
  wheels="${release}/wheelhouse/$(uname -m)"
  "${release}/.venv/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$wheels" \
    --require-hashes -r "${wheels}/requirements.lock"
  chown -R root:root "$release"
  ln -sfn "$release" "${RELEASE_ROOT}/current"
  mkdir -p /etc/jobfleet
  chmod 0755 /etc/jobfleet
  log "installed release ${name}"
}

# ship_logs < CONFIG: install the CloudWatch agent (AL2023 repository) and ship the files named in the JSON
# config on stdin (service logs under /var/log/jobfleet, the bootstrap log) to CloudWatch Logs.
ship_logs() {
  mkdir -p /var/log/jobfleet /etc/jobfleet
  cat > /etc/jobfleet/cloudwatch-agent.json
  cat > /etc/logrotate.d/jobfleet <<'ROTATE'
/var/log/jobfleet/*.log {
  daily
  rotate 3
  missingok
  notifempty
  compress
  copytruncate
}
ROTATE
  retry dnf install -y -q amazon-cloudwatch-agent
  /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
    -c file:/etc/jobfleet/cloudwatch-agent.json
}

# local_ipv4: this host's VPC address (IMDSv2), where its metrics endpoint binds.
local_ipv4() {
  local token
  token="$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')"
  curl -sf -H "X-aws-ec2-metadata-token: ${token}" http://169.254.169.254/latest/meta-data/local-ipv4
}

# write_env FILE: write stdin to FILE readable by root and the jobfleet group only.
write_env() {
  install -m 0640 -o root -g jobfleet /dev/null "$1"
  cat > "$1"
}
# ---- end common ----
