"""Parent side of one executor: fork it, talk to it, kill it, reap it and say how it died.

The worker keeps one ``ExecutorHandle`` per slot. It forks the executor lazily, sends it ``Run`` messages
(which it numbers), reads its replies, and replaces it after ``JOBFLEET_POOL_MAX_JOBS`` jobs, when it asks to
be recycled (resident memory over ``JOBFLEET_POOL_MAX_MEMORY_MB``), when a job outlives its timeout by
``JOBFLEET_POOL_KILL_GRACE`` (SIGKILL), on a stop-job command, or when it dies on its own (``os._exit``,
a segfault, the OOM killer). ``describe_exit`` turns the wait status into the error recorded on the job.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING, Any

from worker.pool.protocol import EXIT, Reader, SlotTable, send

if TYPE_CHECKING:
    from worker.worker import JobfleetWorker


def describe_exit(status: int, killed_by_us: str | None) -> str:
    """Human description of an executor's end from its ``waitpid`` status."""
    if killed_by_us:
        return killed_by_us
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        hints = {signal.SIGSEGV: " (segmentation fault)", signal.SIGKILL: " (killed from outside: out of memory?)",
                 signal.SIGABRT: " (aborted)", signal.SIGBUS: " (bus error)"}
        try:
            known = signal.Signals(sig)
        except ValueError:
            return f"killed by signal {sig}"
        return f"killed by signal {known.name}{hints.get(known, '')}"
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)} (os._exit or sys.exit inside the job)"
    return f"ended with wait status {status}"


class ExecutorHandle:
    """One forked executor process and its two pipes and slot table."""

    def __init__(self, worker: JobfleetWorker, async_concurrency: int) -> None:
        from worker.pool.executor import Executor

        self.slots = SlotTable(async_concurrency + 1)
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the executor
            os.close(self.to_child)
            os.close(self.from_child)
            Executor(worker, to_child_r, from_child_w, self.slots).run()
        os.close(to_child_r)
        os.close(from_child_w)
        self.pid = pid
        self.reader = Reader(self.from_child)
        self.jobs_sent = 0
        self.retiring = False  # sends nothing more; exits once its work is done
        self.kill_reason: str | None = None
        self.exit_status: int | None = None

    def send(self, message: Any) -> None:
        """Send one message (a broken pipe means the executor is gone: its death is noticed by ``read``)."""
        with contextlib.suppress(OSError):
            send(self.to_child, message)

    def read(self) -> list[Any]:
        """Replies available now (call when ``from_child`` is readable)."""
        try:
            return self.reader.read()
        except OSError:
            self.reader.eof = True
            return self.reader.frames()

    @property
    def dead(self) -> bool:
        """True once its reply pipe reached end of file (it exited or was killed)."""
        return self.reader.eof

    def kill(self, reason: str) -> None:
        """SIGKILL it, remembering why (recorded on the job it was running)."""
        if self.kill_reason is None:
            self.kill_reason = reason
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def retire(self) -> None:
        """Ask it to exit after what it was sent."""
        if not self.retiring:
            self.retiring = True
            self.send(EXIT)

    def reap(self) -> str:
        """Wait for the process and close everything; the description of how it ended."""
        if self.exit_status is None:
            try:
                _, self.exit_status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                self.exit_status = 0
        for fd in (self.to_child, self.from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.slots.close()
        return describe_exit(self.exit_status, self.kill_reason)
