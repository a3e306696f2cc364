"""`predict --ray`: the local records from a Ray Data job on a local Ray (2 CPUs), faults included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_arch as tiny_module
from conftest import REPO, write_jpeg
from typer.testing import CliRunner

from agegender_cli import service
from agegender_cli.archs import registry
from agegender_cli.cli.app import app
from agegender_cli.config import ModelOptions, PredictConfig, RayConfig
from agegender_cli.distributed.shards import SUCCESS, read_shards, shard_files

ray = pytest.importorskip("ray")
runner = CliRunner()
AGREEMENT_IMAGES = 18


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs for the module (the runs join it instead of starting their own)."""
    ray.cloudpickle.register_pickle_by_value(tiny_module)  # the workers cannot import the tests folder
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
             object_store_memory=500 * 2**20)
    yield
    ray.shutdown()


@pytest.fixture
def photos(tmp_path) -> Path:
    """24 small images in two folders, a corrupt one and an empty one."""
    folder = tmp_path / "photos"
    for k in range(24):
        write_jpeg(folder / f"sub{k % 2}" / f"img{k:02d}.jpg", seed=k, size=40 + k)
    (folder / "corrupt.jpg").write_bytes(b"not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    return folder


def _key(record: dict) -> tuple:
    return record["file"], -1 if record["frame"] is None else record["frame"], record.get("face") or 0


@pytest.mark.parametrize("comes_back", [True, False])
def test_a_killed_actor_is_retried_and_no_record_is_lost_or_doubled(local_ray, photos, tmp_path, comes_back):
    """An actor killed mid-run: Ray starts it again and it goes on; or it cannot start again (as on a lost node)
    and the other actor does the rest."""
    marker = tmp_path / "die-once"
    marker.touch()
    registry.register((tiny_module.DyingOnce if comes_back else tiny_module.DyingForGood)(marker))
    try:
        cfg = PredictConfig(inputs=(str(photos),), archs=("dying",), detector="none",
                            options=ModelOptions(batch_size=4))
        summary = service.predict_on_ray(cfg, RayConfig(actors=2, out=tmp_path / "out"))
    finally:
        registry.unregister("dying")
    assert not marker.exists()  # an actor did die, mid-run (its batch, one of several, was retried)
    records = read_shards(tmp_path / "out")
    per_file: dict[str, int] = {}
    for record in records:
        per_file[record["file"]] = per_file.get(record["file"], 0) + 1
    assert len(per_file) == 26 and set(per_file.values()) == {1}
    assert summary["faces"] == 24 and summary["errors"] == 2 and summary["records"] == 26
    assert {Path(r["file"]).name for r in summary["unreadable"]} == {"corrupt.jpg", "empty.png"}
    assert sum(sum(ages.values()) for ages in summary["counts"]["dying"].values()) == 24


@pytest.mark.parametrize(("how", "stall_s", "said"), [
    ("raise", None, "a model actor failed: ValueError: the tiny model refuses these faces"),
    ("die", None, "model actors were lost 3 times on the same inputs"),
    ("load", None, r"every model actor died \(.*the tiny model cannot load here"),
    ("hang", "4", r"no model actor answered for 4 s \(ray_stall_s; raise it with AGEGENDER_RAY_STALL_S=N\)"),
])
def test_a_model_that_raises_dies_or_hangs_ends_the_job_in_one_line_and_frees_the_cluster(
        local_ray, photos, tmp_path, monkeypatch, how, stall_s, said):
    import time

    from agegender_cli.errors import AgeGenderError

    if stall_s:
        monkeypatch.setenv("AGEGENDER_RAY_STALL_S", stall_s)
    registry.register(tiny_module.Misbehaving(how))
    began = time.monotonic()
    try:
        cfg = PredictConfig(inputs=(str(photos),), archs=("misbehaving",), detector="none",
                            options=ModelOptions(batch_size=4))
        with pytest.raises(AgeGenderError, match=said) as caught:
            service.predict_on_ray(cfg, RayConfig(actors=2, out=tmp_path / "out"))
    finally:
        registry.unregister("misbehaving")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400, str(caught.value)
    assert time.monotonic() - began < 90
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() - began < 120:
        time.sleep(0.2)  # the job's actors are gone: their CPUs are back for the next job
    assert ray.available_resources().get("CPU", 0) == 2


def test_what_ray_reports_of_a_dead_worker_goes_to_stderr_not_into_the_json_on_stdout(local_ray, photos, tmp_path):
    marker = tmp_path / "die-once"
    marker.touch()
    registry.register(tiny_module.DyingOnce(marker))
    try:
        result = runner.invoke(app, ["predict", str(photos), "--detector", "none", "--arch", "dying", "--ray",
                                     "--ray-actors", "2", "--batch-size", "4", "--out", str(tmp_path / "out"),
                                     "--json"])
    finally:
        registry.unregister("dying")
    assert not marker.exists() and result.exit_code == 1, result.output  # a worker died; two files unreadable
    assert json.loads(result.stdout)["records"] == 26


def test_cli_writes_parquet_shards_and_success_and_exits_1_on_a_bad_file(local_ray, photos, tmp_path, tiny_arch):
    out = tmp_path / "out"
    (out / "part-0123456789abcdef.jsonl").parent.mkdir()
    (out / "part-0123456789abcdef.jsonl").write_text("{}\n")  # a shard of an earlier run
    result = runner.invoke(app, ["predict", str(photos), "--detector", "none", "--arch", "tiny", "--ray",
                                 "--ray-actors", "2", "--out", str(out), "--format", "parquet", "--json",
                                 "--summary"])
    assert result.exit_code == 1, result.output  # two unreadable files: the local rule
    summary = json.loads(result.stdout)
    assert summary == json.loads((out / SUCCESS).read_text())
    assert [p.suffix for p in shard_files(out)] == [".parquet"] * len(summary["shards"])
    records = read_shards(out)
    assert len(records) == 26 and summary["frames"] == 24 and summary["files"] == 26
    errors = [r for r in records if "error" in r]
    assert sorted(r["file"] for r in errors) == sorted(str(photos / n) for n in ("corrupt.jpg", "empty.png"))
    face = next(r for r in records if "error" not in r)
    assert list(face) == ["file", "frame", "face", "box", "score", "tiny"] and face["frame"] is None
    assert f"{len(records)} records in" in result.stderr and str(out) in result.stderr


def test_ray_usage_errors_exit_2(tmp_path):
    for args, words in ((["--ray"], "--out"), (["--out", str(tmp_path)], "--ray"),
                        (["--ray", "--out", str(tmp_path), "--csv", "x.csv"], "--csv"),
                        (["--ray", "--out", str(tmp_path), "--annotate", "ann"], "--annotate"),
                        (["--ray", "--out", str(tmp_path), "--format", "xml"], "--format"),
                        (["--resume"], "--resume"), (["--shard-size", "5"], "--shard-size")):
        result = runner.invoke(app, ["predict", "x.jpg", *args])
        assert result.exit_code == 2 and words in result.output, (args, result.output)


def test_without_ray_installed_ray_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = runner.invoke(app, ["predict", "x.jpg", "--ray", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: --ray needs Ray: pip install 'agegender[ray]'"


@pytest.mark.integration
def test_ray_records_agree_with_local_predict(local_ray, shared_utkface, tmp_path):
    inputs = [str(p) for p in sorted(shared_utkface.glob("*.jpg"))[:AGREEMENT_IMAGES]]
    blank = tmp_path / "blank.png"
    write_jpeg(blank, size=120)  # a colour field with a disc: no face
    inputs += [str(blank), str(tmp_path / "missing.jpg")]
    # the engine pinned: auto may choose differently for this process (torch imported) and for a fresh actor
    cfg = PredictConfig(inputs=tuple(inputs), archs=registry.names(), options=ModelOptions(engine="onnx"))
    local: list[dict] = []
    local_summary = service.predict(cfg, local.append)
    summary = service.predict_on_ray(cfg, RayConfig(actors=1, out=tmp_path / "out"))
    remote = read_shards(tmp_path / "out")
    local.sort(key=_key)
    remote.sort(key=_key)
    assert [list(r) for r in remote] == [list(r) for r in local]  # the same fields, record by record
    for mine, theirs in zip(remote, local, strict=True):
        assert {k: v for k, v in mine.items() if k not in cfg.archs} == {k: v for k, v in theirs.items()
                                                                          if k not in cfg.archs}
        for arch in cfg.archs:
            if arch in theirs:
                a, b = mine[arch], theirs[arch]
                assert (a["gender"], a["age"]) == (b["gender"], b["age"])
                assert abs(a["gender_prob"] - b["gender_prob"]) <= 1e-4
                assert np.allclose(list(a["age_probs"].values()), list(b["age_probs"].values()), atol=1e-4, rtol=0)
    for field in ("files", "frames", "faces", "errors", "counts"):
        assert summary[field] == local_summary[field], field


@pytest.mark.integration
def test_readme_example_runs_as_written(tmp_path):
    """`agegender predict examples/ --ray --out shards/ --summary`: a local Ray started and stopped by the run."""
    command = [str(Path(sys.executable).with_name("agegender")), "predict", str(REPO / "examples"), "--ray",
               "--out", str(tmp_path / "shards"), "--summary"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "RAY_ADDRESS": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Summary" in result.stdout and "2 records in 1 jsonl shard under" in result.stderr
    assert json.loads((tmp_path / "shards" / SUCCESS).read_text())["faces"] == 2
