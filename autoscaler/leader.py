"""Leader lock: one autoscaler daemon acts at a time; the others observe and take over when the lock expires.

The lock is the Redis key ``jobfleet:autoscaler:leader`` holding the leader's id with a TTL. Every tick the
holder renews it with an atomic compare-and-renew (a Lua script: PEXPIRE only if the value is still its
own id); anyone else tries ``SET NX PX`` and wins only once the key has expired or been released. The
daemon renews again right before acting, so a leader paused past its TTL never acts on a lost lease.
"""

from __future__ import annotations

import os
import secrets
import socket

from redis import Redis

LEADER_KEY = "jobfleet:autoscaler:leader"

# KEYS[1] lock, ARGV[1] our id, ARGV[2] ttl ms: renew if ours, else take it if free; 1 = we hold it
_ACQUIRE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def daemon_id() -> str:
    """A unique id for this daemon process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class LeaderLock:
    """The lock as seen by one daemon (``ttl_s`` should be a few decision intervals)."""

    def __init__(self, connection: Redis, ttl_s: float, me: str | None = None, key: str = LEADER_KEY) -> None:
        if ttl_s <= 0:
            raise ValueError(f"leader lock ttl must be > 0 seconds, got {ttl_s}")
        self.connection = connection
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.me = me or daemon_id()
        self.key = key
        self._acquire = connection.register_script(_ACQUIRE_OR_RENEW)
        self._renew = connection.register_script(_RENEW)
        self._release = connection.register_script(_RELEASE)

    def acquire_or_renew(self) -> bool:
        """Renew our lease, or take the lock if nobody holds it; True when we are the leader."""
        return bool(self._acquire(keys=[self.key], args=[self.me, self.ttl_ms]))

    def renew(self) -> bool:
        """Extend our lease only if we still hold it (False: lost, do not act)."""
        return bool(self._renew(keys=[self.key], args=[self.me, self.ttl_ms]))

    def release(self) -> bool:
        """Give the lock up if we hold it, so another daemon takes over at its next tick."""
        return bool(self._release(keys=[self.key], args=[self.me]))

    def holder(self) -> str | None:
        """The id of the current leader (None: nobody)."""
        raw = self.connection.get(self.key)
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)
