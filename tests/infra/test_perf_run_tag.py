"""``jobfleet:perfTestRun`` tags every resource and every worker instance (propagated at launch)."""

from __future__ import annotations

import dataclasses

import pytest

from infra.policies import Resource, check_all
from tests.infra.harness import Program, dev_config, run_program
from tests.infra.test_policies import CTX

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _resources(program: Program) -> list[Resource]:
    return [Resource(r.typ, r.name, r.inputs, r.id) for r in program.resources]


def test_perf_test_run_tags_every_resource_and_every_worker_launch() -> None:
    program = run_program(dev_config(perfTestRun="pool-50k"))
    required = {"Project": "jobfleet", "Stack": "dev", "CostCenter": "jobfleet", "PerfTestRun": "pool-50k"}
    context = dataclasses.replace(CTX, required_tags=required)  # every other rule as the policy suite runs them
    assert check_all(_resources(program), context) == []
    asg = program.one("aws:autoscaling/group:Group")
    propagated = {t["key"]: t for t in asg.inputs["tags"]}
    assert propagated["PerfTestRun"]["value"] == "pool-50k" and propagated["PerfTestRun"]["propagateAtLaunch"]
    template = program.one("aws:ec2/launchTemplate:LaunchTemplate")
    launched = {spec["resourceType"]: spec["tags"] for spec in template.inputs["tagSpecifications"]}
    assert launched["instance"]["PerfTestRun"] == "pool-50k" and launched["volume"]["PerfTestRun"] == "pool-50k"
    cache = program.one("aws:elasticache/replicationGroup:ReplicationGroup")
    assert cache.inputs["tags"]["PerfTestRun"] == "pool-50k"


def test_without_it_the_cost_tags_stay_and_a_bad_tag_is_a_clear_error() -> None:
    program = run_program(dev_config())
    cache = program.one("aws:elasticache/replicationGroup:ReplicationGroup")
    assert cache.inputs["tags"]["PerfTestRun"] == "dev-baseline"  # from jobfleet:costTags in the dev stack
    with pytest.raises(Exception, match="jobfleet:perfTestRun='bad tag!' is not allowed"):
        run_program(dev_config(perfTestRun="bad tag!"))
