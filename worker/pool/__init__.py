"""Pool execution mode: batched claims, one long-lived executor child per worker (see ``worker.pool.worker``)."""

from worker.pool.worker import PoolWorker

__all__ = ["PoolWorker"]
