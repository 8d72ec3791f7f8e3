"""Messages between a pool worker (parent) and its executor (child): pickled frames over two pipes, plus a
shared-memory slot table saying which job the executor is running right now.

Parent -> executor: ``Run`` (one claimed job), ``EXIT`` (finish what was sent, then exit).
Executor -> parent: ``Done`` (a job returned; the parent records the success in a batch),
``Handled`` (the executor recorded the outcome itself through RQ's own code: failure, retry, callbacks, ...),
``Recycle`` (over its memory limit: send it nothing more).

The slot table costs no system call: slot 0 holds the sequence number and start time of the synchronous job
running now, slots 1.. those of running ``async def`` jobs. When an executor dies, the parent reads it to
tell the jobs that died with it (started) from the ones it never began (sent again to the next executor).
"""

from __future__ import annotations

import mmap
import os
import pickle
import struct
from dataclasses import dataclass
from typing import Any

_HEADER = struct.Struct("!I")
_SLOT = struct.Struct("qd")  # sequence number (0 = free), start time (epoch seconds)
EXIT = "exit"


@dataclass(frozen=True)
class Run:
    """Run one claimed job. ``blob`` is its hash as claimed (``decode_fields``); ``full`` asks for RQ's
    complete job path."""

    seq: int
    job_id: str
    execution_id: str
    queue: str
    attempt: int
    blob: bytes
    full: bool


@dataclass(frozen=True)
class Done:
    """A job returned normally; its success is not recorded yet (the parent does it, batched)."""

    seq: int
    return_value: str  # base64 of the serialized value, "" for None
    started: float
    ended: float
    in_async: bool = False  # an ``async def`` job (run concurrently with others)


@dataclass(frozen=True)
class Handled:
    """The executor recorded the job's outcome in Redis itself (RQ's failure/retry/callback paths)."""

    seq: int
    outcome: str


@dataclass(frozen=True)
class Recycle:
    """The executor is over its memory limit and wants to be replaced."""

    rss_mb: float


def send(fd: int, message: Any) -> None:
    """Write one frame (blocking until the pipe took all of it)."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    data = memoryview(_HEADER.pack(len(body)) + body)
    while data:
        written = os.write(fd, data)
        data = data[written:]


class Reader:
    """Frames read from a pipe; ``read`` returns the complete ones (``eof`` once the writer is gone)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False

    def read(self) -> list[Any]:
        """One ``os.read`` (blocks unless data is ready), then every complete frame."""
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            self.eof = True
        self.buffer += chunk
        return self.frames()

    def frames(self) -> list[Any]:
        """Complete frames already buffered."""
        out = []
        view = self.buffer
        pos = 0
        while len(view) - pos >= _HEADER.size:
            (size,) = _HEADER.unpack_from(view, pos)
            if len(view) - pos - _HEADER.size < size:
                break
            start = pos + _HEADER.size
            out.append(pickle.loads(view[start:start + size]))
            pos = start + size
        if pos:
            del self.buffer[:pos]
        return out


class SlotTable:
    """Shared anonymous memory (created before the fork) of ``size`` (seq, started) slots."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.memory = mmap.mmap(-1, _SLOT.size * size)

    def set(self, slot: int, seq: int, started: float) -> None:
        """Mark ``slot`` as running job ``seq`` since ``started``."""
        _SLOT.pack_into(self.memory, slot * _SLOT.size, seq, started)

    def clear(self, slot: int) -> None:
        """Mark ``slot`` free."""
        _SLOT.pack_into(self.memory, slot * _SLOT.size, 0, 0.0)

    def running(self) -> dict[int, float]:
        """Sequence number -> start time of every job running now."""
        out = {}
        for slot in range(self.size):
            seq, started = _SLOT.unpack_from(self.memory, slot * _SLOT.size)
            if seq:
                out[seq] = started
        return out

    def close(self) -> None:
        """Release the mapping."""
        self.memory.close()
