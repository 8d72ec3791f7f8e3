"""The tag set every resource carries: project, stack and the stack's cost-allocation tags."""

from __future__ import annotations

from collections.abc import Mapping

from infra.config import InfraConfig

ROLE_TAG = "jobfleet:role"
"""Tag naming what an instance does (worker, monitoring, dashboard, grafana); Prometheus discovers by it."""
STACK_TAG = "jobfleet:stack"
"""Tag naming the stack of an instance, so Prometheus only scrapes its own stack."""
PERF_RUN_TAG = "PerfTestRun"
"""Cost-allocation tag naming the performance run (``jobfleet:perfTestRun``) that resources are billed to."""


class Tagger:
    """Builds tag maps for one stack: ``Project``, ``Stack``, the config's cost tags, ``PerfTestRun`` (when
    ``jobfleet:perfTestRun`` is set) and a ``Name``."""

    def __init__(self, cfg: InfraConfig) -> None:
        self.base: dict[str, str] = {"Project": cfg.project, "Stack": cfg.stack, **dict(cfg.cost_tags)}
        if cfg.perf_test_run:  # every resource, and (propagated at launch) every worker instance and volume
            self.base[PERF_RUN_TAG] = cfg.perf_test_run
        self.prefix = f"{cfg.project}-{cfg.stack}"

    def __call__(self, name: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Tags for a resource called ``name`` (``Name`` becomes ``<project>-<stack>-<name>``)."""
        return {**self.base, "Name": f"{self.prefix}-{name}", **dict(extra or {})}

    def role(self, name: str, role: str) -> dict[str, str]:
        """Tags for an instance (or its volumes) playing ``role``."""
        return self(name, {ROLE_TAG: role, STACK_TAG: self.base["Stack"]})
