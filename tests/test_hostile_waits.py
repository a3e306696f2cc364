"""Hostile and careless input, round 3: every wait ends on a stop, a full disk or a memory limit is named with
what to do, and no temp file is left behind."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import load_file, write_jpeg
from typer.testing import CliRunner

from agegender_cli import stopping
from agegender_cli.cli.app import app
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import atomic_write_text
from agegender_cli.system_errors import explain

runner = CliRunner()


@pytest.fixture
def trickle():
    """The hostile-input benchmark's server: promises 100 MB, sends a byte every 0.1 s."""
    hostile = load_file(Path(__file__).resolve().parents[1] / "benchmarks" / "hostile_inputs.py", "hostile_inputs")
    return hostile.trickle_server()


@pytest.fixture(autouse=True)
def _fresh_flag():
    stopping.clear()
    yield
    stopping.clear()


def test_a_stop_ends_a_trickling_download_at_once_and_leaves_no_part_file(trickle, tmp_path):
    from agegender_cli.cache import download

    failure: list[BaseException] = []

    def fetch() -> None:
        try:
            download(f"{trickle}/backbone.pt", tmp_path / "backbone.pt", timeout=5, deadline=600)
        except BaseException as exc:  # noqa: BLE001 - what ended it is the test's question
            failure.append(exc)

    worker = threading.Thread(target=fetch)
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    stopping.request_stop()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - started < 2
    assert isinstance(failure[0], stopping.Stopped)
    assert list(tmp_path.iterdir()) == []


def test_a_stop_kills_a_child_process_within_a_poll():
    threading.Timer(0.3, stopping.request_stop).start()
    started = time.monotonic()
    with pytest.raises(stopping.Stopped):
        stopping.run([sys.executable, "-c", "import time; time.sleep(60)"], timeout=120)
    assert time.monotonic() - started < 2
    with pytest.raises(subprocess.TimeoutExpired):
        stopping.clear()
        stopping.run([sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5)
    assert stopping.run([sys.executable, "-c", "print('done')"], timeout=60).stdout == "done\n"


@pytest.mark.integration
def test_sigterm_during_a_slow_backbone_download_ends_the_command_in_seconds(trickle, tmp_path):
    """It ran to its 900 s deadline: the main thread waited on the loader without a timeout (the signal went to
    the downloading thread), and the loader's thread kept the process alive."""
    env = {**os.environ, "AGEGENDER_HOME": str(tmp_path / "home"), "AGEGENDER_BACKBONE_URL_BASE": trickle}
    photo = write_jpeg(tmp_path / "a.jpg")
    command = [sys.executable, "-m", "agegender_cli", "predict", str(photo), "--arch", "facenet", "--engine",
               "torch", "--precision", "fp32", "--detector", "none", "--no-table"]
    child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    seen = ""
    deadline = time.monotonic() + 120
    while "downloading" not in seen and time.monotonic() < deadline:
        seen += child.stderr.readline()
    assert "downloading" in seen, seen
    time.sleep(0.5)
    started = time.monotonic()
    child.send_signal(signal.SIGTERM)
    child.wait(30)
    assert child.returncode == 143 and time.monotonic() - started < 3
    left = [p.name for p in (tmp_path / "home").rglob("*") if "download" in p.name or p.suffix == ".part"]
    assert left == []


def test_a_full_disk_leaves_no_temp_file_and_the_target_as_it_was(tmp_path, monkeypatch):
    target = tmp_path / "results.csv"
    target.write_text("old\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(AgeGenderError, match="the disk is full") as caught:
        atomic_write_text(target, "new\n")
    assert "results.csv" in str(caught.value) and "free some space" in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"] and target.read_text() == "old\n"


def test_a_full_disk_under_predict_csv_is_one_line_and_leaves_no_temp_file(tiny_arch, tmp_path, monkeypatch):
    images = [write_jpeg(tmp_path / f"{i}.jpg") for i in range(3)]
    out = tmp_path / "out"
    out.mkdir()
    from agegender_cli import fileio

    original = fileio.OutputFile.__init__

    def opened(self, path) -> None:
        original(self, path)
        self.handle = _FailingWriter(self.handle)

    monkeypatch.setattr(fileio.OutputFile, "__init__", opened)
    result = runner.invoke(app, ["predict", *map(str, images), "--arch", "tiny", "--detector", "none",
                                 "--csv", str(out / "faces.csv")])
    assert result.exit_code == 1
    assert "cannot write" in result.output and "the disk is full" in result.output
    assert list(out.iterdir()) == []


class _FailingWriter:
    """A binary file whose writes fail with ENOSPC; everything else goes to the real file."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self._handle, name)


@pytest.mark.parametrize(("error", "said"), [
    (RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file data/0: "
                  "file write failed"), "the disk is full"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/run/model.pt"), "writing /data/run/model.pt"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 3221225472 bytes. Error code "
                  "12 (Cannot allocate memory)"), "asked for 3.0 GiB"),
    (ImportError("libtorch_cuda.so: failed to map segment from shared object"), "address-space limit"),
    (MemoryError(), "out of memory"),
])
def test_system_refusals_are_named_with_what_to_do(error, said):
    assert said in (explain(error) or "")


def test_other_errors_are_not_mistaken_for_the_system():
    assert explain(ValueError("bad value")) is None and explain(KeyError("tail")) is None


def test_a_low_address_space_limit_is_said_before_the_models_load():
    """`ulimit -v 3000000` gave `internal error: ... failed to map segment`."""
    script = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, resource.RLIM_INFINITY));"
              "from agegender_cli.system_errors import address_space_warning; print(address_space_warning())")
    said = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60).stdout
    assert "the address-space limit is 2.0 GiB (ulimit -v 2097152)" in said and "raise it" in said


def test_an_unwritable_folder_is_named_once(tmp_path, monkeypatch):
    """A read-only AGEGENDER_HOME said "h/onnx h/onnx: not writable"."""
    from agegender_cli.fileio import make_folder

    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(AgeGenderError) as caught:
        make_folder(tmp_path / "home" / "onnx")
    assert str(caught.value).count(str(tmp_path)) == 1 and "not writable" in str(caught.value)
    with pytest.raises(AgeGenderError, match=r"^--out .*: not writable"):
        make_folder(tmp_path / "out", "--out")


def test_a_read_only_cache_hashes_instead_of_remembering(tmp_path, monkeypatch):
    """A read-only, already filled AGEGENDER_HOME stopped predict: the digest memo could not be written."""
    import hashlib

    from agegender_cli import onnx_models

    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights")

    def refused(*args, **kwargs):
        raise AgeGenderError(f"{tmp_path / 'home' / 'onnx'}: not writable; give a folder you can write to")

    monkeypatch.setattr(onnx_models, "atomic_write_text", refused)
    assert onnx_models.file_digest(model) == hashlib.sha256(b"weights").hexdigest()


def test_ray_shards_never_go_into_an_input_folder(tmp_path):
    from agegender_cli.distributed.journal import Done
    from agegender_cli.distributed.listing import refuse_input_folder, write_listing
    from agegender_cli.faces.inputs import walk_inputs

    photos = tmp_path / "photos"
    photos.mkdir()
    face = write_jpeg(photos / "a.jpg")
    for out, given in ((photos, photos), (face, face), (photos, face)):
        with pytest.raises(AgeGenderError, match="give another --out"):
            refuse_input_folder(out, (str(given),))
    refuse_input_folder(tmp_path / "shards", (str(photos),))
    refuse_input_folder(photos / "shards", (str(photos),))  # a folder of its own inside is fine
    listed = tmp_path / "list.txt"  # a photo of --out named on stdin: found while listing, nothing left behind
    listed.write_text(f"{face}\n")
    with pytest.raises(AgeGenderError, match="give another --out"), open(listed) as stdin:
        write_listing(walk_inputs(["-"], stdin=stdin), photos, Done(), print, ["-"])
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg"]
