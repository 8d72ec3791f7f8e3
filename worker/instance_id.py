"""Which machine a worker runs on: the configured id, else the EC2 instance id (IMDSv2), else the host name."""

from __future__ import annotations

import socket
import urllib.request

from jobfleet.settings import Settings

IMDS_ENDPOINT = "http://169.254.169.254"


def ec2_instance_id(endpoint: str = IMDS_ENDPOINT, timeout: float = 0.3) -> str | None:
    """The EC2 instance id via IMDSv2 (token then metadata), or None when not on EC2 / no answer in time."""
    try:
        token_request = urllib.request.Request(
            f"{endpoint}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        with urllib.request.urlopen(token_request, timeout=timeout) as response:
            token = response.read().decode()
        id_request = urllib.request.Request(
            f"{endpoint}/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token}
        )
        with urllib.request.urlopen(id_request, timeout=timeout) as response:
            value = response.read().decode().strip()
        return value or None
    except (OSError, ValueError):
        return None


def resolve_instance_id(settings: Settings, endpoint: str = IMDS_ENDPOINT) -> str:
    """``settings.instance_id`` if set, else the EC2 instance id, else this host's name."""
    return settings.instance_id or ec2_instance_id(endpoint) or socket.gethostname()
