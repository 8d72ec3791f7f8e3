"""Jobs of the RQ-based contenders beyond ``jobfleet.demo.jobs.noop``."""

from __future__ import annotations

import asyncio


async def nap(seconds: float) -> None:
    """An I/O-bound ``async def`` job (jobfleet pool mode runs many at once on its event loop)."""
    await asyncio.sleep(seconds)
