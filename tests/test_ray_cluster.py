"""`predict --ray` on a cluster started the usual way (`ray start --head`, then worker nodes of 1 CPU each joining
it), with Ray's token authentication: joining by address, `auto` and Ray Client, a missing or wrong token, and a
job stopped half way and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray_cluster import start_cluster

from agegender_cli.distributed.journal import JOURNAL
from agegender_cli.distributed.shards import SUCCESS, read_shards

pytest.importorskip("ray")
pytestmark = pytest.mark.integration
AGEGENDER = str(Path(sys.executable).with_name("agegender"))
JOB = ["--detector", "none", "--arch", "both", "--engine", "onnx"]


@pytest.fixture(scope="module")
def cluster():
    """A head with no CPUs and two worker nodes of 1 CPU each, token authentication on (Ray's default)."""
    started = start_cluster(workers=2, cpus=1)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def crops(shared_utkface, tmp_path_factory) -> Path:
    """A file listing UTKFace crops, one path a line (as `find ... > list` writes it)."""
    listing = tmp_path_factory.mktemp("listing") / "paths.txt"
    listing.write_text("".join(f"{p}\n" for p in sorted(shared_utkface.glob("*.jpg"))[:160]))
    return listing


def predict(args: list[str], env: dict, listing: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    with open(listing) as paths:
        return subprocess.run([AGEGENDER, "predict", "-", *JOB, "--ray", *args], stdin=paths, env=env,
                              capture_output=True, text=True, timeout=timeout)


def once_each(out: Path, listing: Path) -> None:
    """Every input of the listing has exactly one record in the shards."""
    files = sorted(record["file"] for record in read_shards(out))
    assert files == sorted(listing.read_text().splitlines())


@pytest.mark.parametrize("how", ["address", "auto", "ray-client"])
def test_a_started_cluster_is_joined_with_its_token(cluster, crops, tmp_path, how):
    """Ray turns token authentication on by default since 2.59; a client naming an address needs the mode and
    the token, which agegender passes on where a token is at hand (here: RAY_AUTH_TOKEN_PATH), as `ray start
    --address` does. Before, the join failed after 20 s: "Failed to connect to Ray cluster"."""
    env = cluster.env(mode=None)  # RAY_AUTH_MODE unset, as in a user's shell
    address = {"address": cluster.address, "auto": "auto", "ray-client": cluster.client_address}[how]
    if how == "auto":
        env["RAY_ADDRESS"] = cluster.address
    out = tmp_path / "out"
    done = predict(["--ray-address", address, "--out", str(out), "--json"], env, crops)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["records"] == summary["faces"] == 160 and summary["errors"] == 0
    once_each(out, crops)
    if how == "address":
        assert summary["actors"] == 2 and summary["nodes"] == 2  # one actor on each 1-CPU node


@pytest.mark.parametrize("how", ["address", "ray-client"])
def test_a_missing_or_wrong_token_is_told_at_once_with_what_to_set(cluster, crops, tmp_path, how):
    address = cluster.address if how == "address" else cluster.client_address
    home = tmp_path / "home"  # no ~/.ray/auth_token there
    home.mkdir()
    env = cluster.env(mode=None)
    del env["RAY_AUTH_TOKEN_PATH"]
    wrong = cluster.env(token="not-the-token")
    for given, words in ((env, "the cluster asks for a token"),
                         (wrong, "the cluster refused the token from RAY_AUTH_TOKEN_PATH")):
        started = time.monotonic()
        done = predict(["--ray-address", address, "--out", str(tmp_path / "out")],
                       {**given, "HOME": str(home)}, crops, timeout=60)
        assert done.returncode == 1, done.stderr[-2000:]
        assert time.monotonic() - started < 30
        last = done.stderr.strip().splitlines()[-1]
        assert words in last and "RAY_AUTH_MODE=token" in last and "ray get-auth-token" in last, last


def test_a_job_stopped_half_way_is_resumed_without_loss_or_duplicate(cluster, crops, tmp_path):
    env = cluster.env()
    out = tmp_path / "out"
    args = ["--ray-address", cluster.address, "--out", str(out), "--shard-size", "8"]
    with open(crops) as paths:
        job = subprocess.Popen([AGEGENDER, "predict", "-", *JOB, "--ray", *args], stdin=paths, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    journal = out / JOURNAL
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and job.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 4:  # the header and 3 shards
            break
        time.sleep(0.05)
    job.send_signal(signal.SIGINT)  # Ctrl-C
    job.wait(timeout=60)
    assert job.returncode != 0 and not (out / SUCCESS).exists(), "the job ended before it was stopped"
    # the cluster may have written every shard by then: what counts is what the journal holds (20 shards of 8)
    assert 3 <= len(journal.read_text().splitlines()) - 1 < 20
    stray = out / "part-0123456789abcdef.jsonl"  # a shard whose journal line was never written
    stray.write_text(json.dumps({"file": "stray.jpg", "frame": None}) + "\n")

    done = predict([*args, "--resume", "--json"], env, crops)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["files"] == summary["records"] == summary["faces"] == 160
    assert 24 <= summary["done_before"] < 160 and f"{summary['done_before']} inputs finished before" in done.stderr
    assert not stray.exists()
    once_each(out, crops)
    assert not (out / "_inputs").exists()

    again = predict([*args, "--resume", "--json"], env, crops)  # nothing left: the summary stands, nothing is redone
    assert again.returncode == 0 and json.loads(again.stdout)["done_before"] == 160
    assert "every input was finished by an earlier run" in again.stderr
    once_each(out, crops)
    other = predict([*args, "--resume", "--detector", "mtcnn"], env, crops)
    assert other.returncode == 1 and "holds a job run with other settings (detector 'none' -> 'mtcnn')" in other.stderr


def test_the_documented_cluster_commands_work_from_a_clean_shell(cluster, crops, tmp_path):
    """docs/cluster.md: `ray start --address=HEAD:PORT`, then `agegender predict ... --ray --ray-address auto` on a
    node of the cluster; the shell has only what `ray start` left (the token in ~/.ray/auth_token)."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(cluster.token)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "RAY_ADDRESS": cluster.address,
           "AGEGENDER_HOME": os.environ.get("AGEGENDER_HOME", str(Path.home() / ".cache" / "agegender")),
           "RAY_USAGE_STATS_ENABLED": "0"}
    out = tmp_path / "faces"
    done = predict(["--ray-address", "auto", "--out", str(out)], env, crops)
    assert done.returncode == 0, done.stderr[-3000:]
    once_each(out, crops)
