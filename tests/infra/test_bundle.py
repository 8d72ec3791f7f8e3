"""Release bundles: deterministic, content-addressed, runtime deps only; new code rolls the fleet."""

from __future__ import annotations

import base64
import shutil
import tarfile
from pathlib import Path

import pytest

import infra.bundle as bundle_module
from infra.bundle import BundleError, build_app_bundle, build_bundle, runtime_requirements
from tests.infra.harness import ROOT, dev_config, run_program

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REQUIREMENTS = "# Runtime\nrq==3.0.0\nredis==8.1.0\n# Infrastructure\npulumi==3.272.0\n# Tests\npytest==9.2.0\n"


def _repo(root: Path, body: str = "print('v1')\n") -> Path:
    (root / "worker").mkdir(parents=True)
    (root / "worker" / "__main__.py").write_text(body)
    (root / "worker" / "__pycache__").mkdir()
    (root / "worker" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    (root / "requirements.txt").write_text(REQUIREMENTS)
    return root


def test_runtime_requirements_keep_only_the_runtime_section() -> None:
    assert runtime_requirements(REQUIREMENTS) == "rq==3.0.0\nredis==8.1.0\n"
    real = runtime_requirements((ROOT / "requirements.txt").read_text())
    assert "rq==" in real and "redis==" in real and "pulumi" not in real and "pytest" not in real
    with pytest.raises(BundleError, match="no '# Runtime' section"):
        runtime_requirements("pytest==1\n")


def test_bundle_is_deterministic_and_named_by_content(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    first = build_bundle("jobfleet", ("worker",), root=root, out_dir=tmp_path / "out1")
    second = build_bundle("jobfleet", ("worker",), root=root, out_dir=tmp_path / "out2")
    assert first.key == second.key and first.path.read_bytes() == second.path.read_bytes()
    assert first.key == f"releases/jobfleet-{first.sha256[:16]}.tar.gz"
    with tarfile.open(first.path) as tar:
        names = tar.getnames()
        assert names == ["requirements-runtime.txt", "worker/__main__.py"]  # no __pycache__
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
    (root / "worker" / "__main__.py").write_text("print('v2')\n")
    changed = build_bundle("jobfleet", ("worker",), root=root, out_dir=tmp_path / "out1")
    assert changed.key != first.key


def test_bundle_without_files_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(REQUIREMENTS)
    with pytest.raises(BundleError, match="no files found under worker"):
        build_bundle("jobfleet", ("worker",), root=tmp_path, out_dir=tmp_path / "out")


def test_real_app_bundle_holds_the_entry_points() -> None:
    bundle = build_app_bundle()
    assert bundle == build_app_bundle()
    assert "worker/__main__.py" in bundle.members and "requirements-runtime.txt" in bundle.members
    assert not any(m.startswith(("tests/", "infra/", "bench/")) for m in bundle.members)


def test_new_code_means_new_launch_template_user_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = run_program(dev_config())
    copy = tmp_path / "repo"
    for name in ("worker", "autoscaler", "dashboard", "observability"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "requirements.txt", copy / "requirements.txt")
    with (copy / "worker" / "__init__.py").open("a") as handle:
        handle.write("\n# a code change\n")
    original = bundle_module.build_app_bundle
    monkeypatch.setattr(bundle_module, "build_app_bundle",
                        lambda **kw: original(root=copy, out_dir=tmp_path / "out", **kw))
    after = run_program(dev_config())

    def lt_user_data(program: object) -> str:
        lt = program.one("aws:ec2/launchTemplate:LaunchTemplate")  # type: ignore[attr-defined]
        return base64.b64decode(lt.inputs["userData"]).decode()

    old_key, new_key = before.outputs["releaseKey"], after.outputs["releaseKey"]
    assert old_key != new_key
    old_name, new_name = (Path(k).name.removesuffix(".tar.gz") for k in (old_key, new_key))
    assert old_name in lt_user_data(before) and new_name in lt_user_data(after)
    assert lt_user_data(before).replace(old_name, new_name) == lt_user_data(after)
    # the ASG follows the template's latest version, so the change starts an instance refresh
    asg = after.one("aws:autoscaling/group:Group").inputs
    assert asg["launchTemplate"]["version"] != "$Latest" and asg["instanceRefresh"]["strategy"] == "Rolling"


def test_stale_bundles_are_pruned(tmp_path: Path) -> None:
    import os

    root = _repo(tmp_path / "repo")
    out = tmp_path / "out"
    out.mkdir()
    stale, fresh = out / "jobfleet-0000000000000000.tar.gz", out / "jobfleet-1111111111111111.tar.gz"
    for item in (stale, fresh):
        item.write_bytes(b"old")
    os.utime(stale, (0, 0))
    current = build_bundle("jobfleet", ("worker",), root=root, out_dir=out)
    assert current.path.exists() and fresh.exists() and not stale.exists()
