"""Every invalid definition is rejected with a message naming the node and the problem; nothing is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis

from jobfleet.settings import Settings
from jobfleet.workflows import Workflow, WorkflowError, array, from_dict, load_file, submit_workflow, task
from tests.conftest import ROOT
from tests.conftest import test_env as child_env

J = "tests.workflows.jobs"
INVALID: list[tuple[str, list[dict[str, object]], str]] = [
    ("cycle", [{"id": "a", "func": f"{J}.noop", "depends_on": ["c"]},
               {"id": "b", "func": f"{J}.noop", "depends_on": ["a"]},
               {"id": "c", "func": f"{J}.noop", "depends_on": ["b"]}], "dependency cycle"),
    ("unknown dependency", [{"id": "a", "func": f"{J}.noop", "depends_on": ["ghost"]}],
     "task 'a': depends on unknown task 'ghost'"),
    ("unimportable function", [{"id": "a", "func": "no_such_module.fn"}], "task 'a': cannot import function"),
    ("missing attribute", [{"id": "a", "func": f"{J}.no_such_function"}], "task 'a': cannot import function"),
    ("array size 0", [{"id": "a", "func": f"{J}.child", "array": {"size": 0}}], "task 'a': array size must be"),
    ("array size 10001", [{"id": "a", "func": f"{J}.child", "array": {"size": 10_001}}],
     "task 'a': array size must be a whole number in 1..10000"),
    ("N_TO_N size mismatch", [{"id": "a", "func": f"{J}.child", "array": {"size": 3}},
                              {"id": "b", "func": f"{J}.child", "depends_on": ["a"],
                               "array": {"size": 4, "depends": "N_TO_N"}}],
     "task 'b': N_TO_N on array 'a' of size 3, but this array has size 4"),
    ("self dependency", [{"id": "a", "func": f"{J}.noop", "depends_on": ["a"]}], "task 'a': depends on itself"),
    ("duplicate id", [{"id": "a", "func": f"{J}.noop"}, {"id": "a", "func": f"{J}.noop"}],
     "task 'a': id is used twice"),
    ("unknown queue", [{"id": "a", "func": f"{J}.noop", "queue": "nope"}], "task 'a': queue 'nope'"),
    ("bad policy", [{"id": "a", "func": f"{J}.noop", "on_failure": "explode"}], "task 'a': on_failure 'explode'"),
]


@pytest.mark.parametrize(("case", "tasks", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_definition_is_rejected_and_nothing_is_written(
    case: str, tasks: list[dict[str, object]], message: str, redis: Redis, settings: Settings
) -> None:
    with pytest.raises(WorkflowError) as info:
        submit_workflow({"name": case, "tasks": tasks}, connection=redis, settings=settings)
    assert message in str(info.value)
    assert redis.dbsize() == 0


def test_python_api_is_validated_the_same_way(redis: Redis, settings: Settings) -> None:
    wf = Workflow("py", [array("a", f"{J}.child", size=2), array("b", f"{J}.child", size=5, depends="N_TO_N",
                                                                     depends_on=["a"])])
    with pytest.raises(WorkflowError, match="task 'b': N_TO_N on array 'a' of size 2"):
        submit_workflow(wf, connection=redis, settings=settings)
    with pytest.raises(WorkflowError, match=r"cannot import"):
        submit_workflow(Workflow("lambda", [task("x", lambda: None)]), connection=redis, settings=settings)
    assert redis.dbsize() == 0


def test_yaml_and_json_files_round_trip(tmp_path: Path) -> None:
    yaml_file = tmp_path / "wf.yaml"
    yaml_file.write_text(f"""
name: files
tenant: team-a
tasks:
  - id: a
    func: {J}.record
    args: [log, a]
  - id: b
    func: {J}.child
    depends_on: [a]
    array: {{size: 4, depends: SEQUENTIAL, max_failures: 1}}
    retry: {{max: 2, intervals: [0]}}
""")
    wf = load_file(yaml_file)
    assert wf.tenant == "team-a" and wf.nodes[1].array is not None and wf.nodes[1].array.size == 4
    json_file = tmp_path / "wf.json"
    json_file.write_text(json.dumps({"tasks": [{"id": "a", "func": f"{J}.noop"}]}))
    assert load_file(json_file).nodes[0].func == f"{J}.noop"
    with pytest.raises(WorkflowError, match="unknown field"):
        from_dict({"tasks": [{"id": "a", "func": f"{J}.noop", "colour": "red"}]})


def test_jobfleet_submit_routes_workflow_files(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(f"tasks:\n  - id: a\n    func: {J}.noop\n  - id: b\n    func: {J}.noop\n    depends_on: [a]\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"tasks:\n  - id: a\n    func: {J}.noop\n    depends_on: [zzz]\n")
    env = child_env(redis_url, tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jobfleet", "submit", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    ok = run(str(good), "--key", "k1")
    assert ok.returncode == 0, ok.stderr
    created = json.loads(ok.stdout)
    assert created["created"] is True and len(created["id"]) == 32
    again = json.loads(run(str(good), "--key", "k1").stdout)
    assert again == {**created, "created": False}
    assert redis.zcard("jobfleet:wf:index") == 1
    failed = run(str(bad))
    assert failed.returncode == 2
    assert "task 'a': depends on unknown task 'zzz'" in failed.stderr
    assert "Traceback" not in failed.stderr
