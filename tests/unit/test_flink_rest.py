"""Choosing where a job resumes from (intentflow/flink_rest.py): restore points on disk and from REST."""
from __future__ import annotations

import os

from intentflow.flink_rest import RestorePoint, merge, newest, scan_dirs


def _meta(path, mtime_s: float):
    path.mkdir(parents=True)
    (path / "_metadata").write_bytes(b"x")
    os.utime(path / "_metadata", (mtime_s, mtime_s))


def test_scan_finds_complete_checkpoints_and_savepoints_only(tmp_path):
    _meta(tmp_path / "cp" / "a" / "chk-3", 1000)
    _meta(tmp_path / "cp" / "b" / "chk-7", 3000)
    (tmp_path / "cp" / "b" / "chk-8").mkdir()  # in progress: no _metadata
    _meta(tmp_path / "sp" / "savepoint-abc-1", 2000)
    points = scan_dirs(tmp_path / "cp", tmp_path / "sp")
    assert sorted((p.kind, p.time_ms, p.job_id) for p in points) == [
        ("checkpoint", 1_000_000, "a"), ("checkpoint", 3_000_000, "b"), ("savepoint", 2_000_000, "")]
    assert newest(points).path == str(tmp_path / "cp" / "b" / "chk-7")
    assert scan_dirs(tmp_path / "missing", None) == [] and newest([]) is None


def test_the_same_point_from_rest_and_disk_counts_once_and_a_savepoint_wins_a_tie(tmp_path):
    disk = RestorePoint("/data/sp/savepoint-1", "savepoint", 5000)
    rest = RestorePoint("file:/data/sp/savepoint-1", "savepoint", 5001, "j1")
    chk = RestorePoint("file:///data/cp/j1/chk-4", "checkpoint", 5001, "j1")
    merged = merge([disk, rest, chk])
    assert len(merged) == 2
    assert newest(merged).kind == "savepoint"
    assert newest([RestorePoint("x", "checkpoint", 9000), rest]).path == "x"


def test_the_submitted_package_holds_every_module_model_and_ruleset_and_nothing_else(tmp_path):
    from intentflow.jobctl import PACKAGE_PARTS, build_package
    from operators import layout

    pkg = build_package(tmp_path)
    shipped = {p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file()}
    for part in ("jobs", "operators", "udfs", "connectors"):
        for module in (layout.ROOT / part).rglob("*.py"):
            if "__pycache__" not in module.parts:
                assert module.relative_to(layout.ROOT).as_posix() in shipped
    manifests = {p.relative_to(layout.ROOT).as_posix() for p in (layout.ROOT / "models").rglob("manifest.json")}
    onnx = {p.relative_to(layout.ROOT).as_posix() for p in (layout.ROOT / "models").rglob("*.onnx")}
    assert manifests and onnx and manifests | onnx <= shipped
    assert "rules/default.v1.json" in shipped and "schemas/rules.v1.json" in shipped
    assert all(s.split("/")[0] in PACKAGE_PARTS for s in shipped)
    assert not [s for s in shipped if "__pycache__" in s or s.startswith("operators/java")]
    again = build_package(tmp_path)  # replaces, never mixes two builds
    assert {p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file()} == shipped
