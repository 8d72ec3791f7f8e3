"""The engine with real workers: order, fan-out/fan-in, arrays, failure policies, callbacks, shell tasks."""

from __future__ import annotations

import sys
from pathlib import Path

from jobfleet.workflows import RetrySpec, Workflow, array, submit_workflow, task
from jobfleet.workflows.store import read_nodes
from tests.workflows.conftest import Fleet, positions

J = "tests.workflows.jobs"


def _submit(fleet: Fleet, wf: Workflow) -> str:
    return submit_workflow(wf, connection=fleet.redis, settings=fleet.settings).id


def test_diamond_runs_in_dependency_order_and_calls_back(fleet: Fleet) -> None:
    log = fleet.log()
    wf = Workflow("diamond", [
        task("a", f"{J}.record", args=[log, "a"], retry=0),
        task("b", f"{J}.record", args=[log, "b", 0.2], depends_on=["a"]),
        task("c", f"{J}.record", args=[log, "c"], depends_on=["a"]),
        task("d", f"{J}.record", args=[log, "d"], depends_on=["b", "c"]),
    ], on_success=f"{J}.on_success", on_end=f"{J}.on_end", on_failure=f"{J}.on_failure")
    wid = _submit(fleet, wf)
    status = fleet.wait_end(wid)
    assert status["status"] == "succeeded"
    assert status["counts"] == {"queued": 0, "running": 0, "succeeded": 4, "failed": 0, "canceled": 0}
    order = fleet.entries(log)
    assert sorted(order) == ["a", "b", "c", "d"]
    assert order[0] == "a" and order[-1] == "d"
    assert status["ended_at"] >= status["started_at"] >= status["created_at"]
    from tests.worker.helpers import wait_for

    wait_for(lambda: fleet.redis.llen(f"callbacks:{wid}") == 2, 20, what="callbacks")
    assert sorted(fleet.entries(f"callbacks:{wid}")) == ["end", "success"]


def test_sequential_and_n_to_n_arrays(fleet: Fleet) -> None:
    log = fleet.log()
    wf = Workflow("arrays", [
        array("seq", f"{J}.child", size=6, depends="SEQUENTIAL", args=[log, "s"]),
        array("a", f"{J}.child", size=5, args=[log, "a"], kwargs={"sleep": 0.0}),
        array("b", f"{J}.child", size=5, depends="N_TO_N", depends_on=["a"], args=[log, "b"]),
    ])
    wid = _submit(fleet, wf)
    assert fleet.wait_end(wid)["status"] == "succeeded"
    entries = fleet.entries(log)
    assert [e for e in entries if e.startswith("s:")] == [f"s:{i}" for i in range(6)]
    pos = positions(entries)
    for i in range(5):
        assert pos[f"a:{i}"] < pos[f"b:{i}"]


def test_fail_policy_fails_the_workflow_and_cancels_what_waits(fleet: Fleet) -> None:
    log = fleet.log()
    wf = Workflow("fails", [
        task("bad", f"{J}.fail", args=[log, "bad"], retry=0),
        task("after", f"{J}.record", args=[log, "after"], depends_on=["bad"]),
        array("more", f"{J}.child", size=3, args=[log], depends_on=["after"]),
    ], on_failure=f"{J}.on_failure", on_end=f"{J}.on_end")
    wid = _submit(fleet, wf)
    status = fleet.wait_end(wid)
    assert status["status"] == "failed"
    assert status["error"] == "task bad failed"
    assert status["counts"] == {"queued": 0, "running": 0, "succeeded": 0, "failed": 1, "canceled": 4}
    assert fleet.entries(log) == ["bad"]
    from tests.worker.helpers import wait_for

    wait_for(lambda: fleet.redis.llen(f"callbacks:{wid}") == 2, 20, what="callbacks")
    assert sorted(fleet.entries(f"callbacks:{wid}")) == ["end", "failure"]


def test_skip_policy_skips_dependents_and_the_rest_runs(fleet: Fleet) -> None:
    log = fleet.log()
    wf = Workflow("skips", [
        task("bad", f"{J}.fail", args=[log, "bad"], retry=0, on_failure="skip"),
        task("child", f"{J}.record", args=[log, "child"], depends_on=["bad"]),
        task("grandchild", f"{J}.record", args=[log, "grandchild"], depends_on=["child"]),
        task("other", f"{J}.record", args=[log, "other"]),
        task("after-other", f"{J}.record", args=[log, "after-other"], depends_on=["other"]),
    ])
    wid = _submit(fleet, wf)
    status = fleet.wait_end(wid)
    assert status["status"] == "succeeded"
    assert status["counts"] == {"queued": 0, "running": 0, "succeeded": 2, "failed": 1, "canceled": 2}
    assert sorted(fleet.entries(log)) == ["after-other", "bad", "other"]
    nodes = {n["id"]: n for n in read_nodes(fleet.redis, wid, 5)}
    assert nodes["child"]["skipped"] and nodes["grandchild"]["skipped"] and nodes["bad"]["failed"]


def test_continue_policy_runs_dependents_and_array_threshold(fleet: Fleet) -> None:
    log = fleet.log()
    wf = Workflow("continues", [
        task("bad", f"{J}.fail", args=[log, "bad"], retry=0, on_failure="continue"),
        task("after", f"{J}.record", args=[log, "after"], depends_on=["bad"]),
        array("tolerant", f"{J}.fail_some", size=6, args=[log, [1, 4]], retry=0, max_failures=2),
        task("after-tolerant", f"{J}.record", args=[log, "after-tolerant"], depends_on=["tolerant"]),
    ])
    wid = _submit(fleet, wf)
    status = fleet.wait_end(wid)
    assert status["status"] == "succeeded"
    assert status["counts"]["failed"] == 3 and status["counts"]["succeeded"] == 6
    assert {"after", "after-tolerant"} <= set(fleet.entries(log))

    log2 = fleet.log()
    over = Workflow("over-threshold", [
        array("tolerant", f"{J}.fail_some", size=6, args=[log2, [1, 4]], retry=0, max_failures=1),
        task("after", f"{J}.record", args=[log2, "after"], depends_on=["tolerant"]),
    ])
    status = fleet.wait_end(_submit(fleet, over))
    assert status["status"] == "failed"
    assert status["counts"]["canceled"] >= 1 and "after" not in fleet.entries(log2)


def test_retries_then_succeeds(fleet: Fleet) -> None:
    log = fleet.log()
    wf = Workflow("retries", [task("flaky", f"{J}.flaky", args=[log, "f", 2], retry=RetrySpec(max=3, intervals=(0,)))])
    status = fleet.wait_end(_submit(fleet, wf))
    assert status["status"] == "succeeded"
    assert fleet.entries(log) == ["f#1", "f#2", "f#3"]


def test_shell_task_gets_its_environment_and_exit_codes_decide_retries(fleet: Fleet, tmp_path: Path) -> None:
    marker = tmp_path / "attempts"
    script = (
        'echo "index=$JOBFLEET_ARRAY_INDEX id=$JOBFLEET_JOB_ID input=$JOBFLEET_JOB_INPUT"; '
        f'echo x >> {marker}-$JOBFLEET_ARRAY_INDEX; '
        f'if [ "$(wc -l < {marker}-$JOBFLEET_ARRAY_INDEX)" -lt 2 ]; then exit 75; fi'
    )
    wf = Workflow("shell", [
        array("sh", command=["sh", "-c", script], size=2, input={"day": "mon"},
              retry=RetrySpec(max=2, intervals=(0,), exit_codes=(75,))),
        task("permanent", command=[sys.executable, "-c", "import sys; print('no'); sys.exit(3)"],
             retry=RetrySpec(max=3, intervals=(0,), exit_codes=(75,)), on_failure="continue"),
    ])
    wid = _submit(fleet, wf)
    status = fleet.wait_end(wid)
    assert status["status"] == "succeeded"
    assert status["counts"]["succeeded"] == 2 and status["counts"]["failed"] == 1
    from rq.job import Job

    from tests.worker.helpers import wait_for

    for i in range(2):
        assert (tmp_path / f"attempts-{i}").read_text().count("x") == 2  # retried once on exit code 75
        # RQ runs a job's success callback (which counts the task) just before it stores the result
        job = Job.fetch(f"{wid}-0-{i}", connection=fleet.redis)
        wait_for(lambda job=job: job.return_value() is not None, 10, what="the task's stored result")
        result = job.return_value()
        assert result["exit_code"] == 0
        assert f"index={i} id={wid}-0-{i} input={{\"day\": \"mon\"}}" in result["output"]
    failed = Job.fetch(f"{wid}-1-0", connection=fleet.redis)
    assert failed.get_status() == "failed"
    assert failed.number_of_retries in (None, 0)  # exit code 3 is not in the retry rules
    assert "exited with code 3" in (failed.latest_result().exc_string or "")


def test_cancel_stops_running_tasks_and_drops_waiting_ones(fleet: Fleet) -> None:
    from rq.job import Job

    from jobfleet.workflows import cancel_workflow
    from tests.worker.helpers import wait_for

    log = fleet.log()
    wf = Workflow("cancel", [
        task("long", f"{J}.record", args=[log, "long", 60]),
        task("after", f"{J}.record", args=[log, "after"], depends_on=["long"]),
    ])
    wid = _submit(fleet, wf)
    # running as the workflow sees it (its runner started), not only claimed: in pool mode a claimed job's
    # hash already says "started" while it may still wait in the worker's prefetch
    from jobfleet.workflows import store

    wait_for(lambda: (store.read_status(fleet.redis, wid) or {}).get("counts", {}).get("running") == 1, 30,
             what="long task running")
    result = cancel_workflow(fleet.redis, wid)
    assert result["status"] == "canceled" and result["stopped"] == [f"{wid}-0-0"]
    status = fleet.wait_end(wid)
    assert status["status"] == "canceled"
    assert status["counts"] == {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "canceled": 2}
    wait_for(lambda: Job.fetch(f"{wid}-0-0", connection=fleet.redis).get_status() in ("stopped", "failed"), 20,
             what="the running task stopped")
    assert fleet.entries(log) == []
