"""Hostile and careless inputs cost bounded resources: archive bombs, lying headers, escapes, slow servers."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import time
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from agegender_cli import cache
from agegender_cli.cache import RouteFailed, download
from agegender_cli.cli.app import app
from agegender_cli.config import DatasetConfig, Limits
from agegender_cli.data import archives
from agegender_cli.data.archives import MARKER, extract_archive
from agegender_cli.data.utkface import build_dataset, read_manifest
from agegender_cli.errors import AgeGenderError

MiB = 1 << 20
BOMB_SIZE = 200 * MiB


def _jpeg(seed: int) -> bytes:
    """A small JPEG of random noise: every seed decodes and differs from every other (no duplicates)."""
    noise = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", noise)
    assert ok
    return encoded.tobytes()


def _utk_names(first_seed: int, n: int) -> list[str]:
    """UTKFace names with ages 25-32 (one age class, none in a gap)."""
    return [f"{25 + k % 8}_{k % 2}_{k % 5}_2017011617452{first_seed + k:04d}.jpg" for k in range(n)]


def _utk_zip(path: Path, first_seed: int, n: int = 6) -> list[str]:
    names = _utk_names(first_seed, n)
    with zipfile.ZipFile(path, "w") as zf:
        for k, name in enumerate(names):
            zf.writestr(f"UTKFace/{name}", _jpeg(first_seed + k))
    return names


def _tar(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def _leftovers(folder: Path) -> list[str]:
    """Everything under `folder` but the archives the test made there."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if not p.name.endswith((".zip", ".tar", ".gz")))


class _Zeros(io.RawIOBase):
    """`size` zero bytes, produced lazily: a bomb is built without holding it in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    """A zip and a tar.gz of one 200 MiB member of zeros, about 200 KiB each on disk."""
    folder = tmp_path_factory.mktemp("bombs")
    zip_path, tar_path = folder / "bomb.zip", folder / "bomb.tar.gz"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf, \
            zf.open("20_0_0_20170116174525125.jpg", "w") as member:
        for _ in range(BOMB_SIZE // MiB):
            member.write(bytes(MiB))
    with tarfile.open(tar_path, "w:gz", compresslevel=9) as tf:
        info = tarfile.TarInfo("20_0_0_20170116174525125.jpg")
        info.size = BOMB_SIZE
        tf.addfile(info, io.BufferedReader(_Zeros(BOMB_SIZE), MiB))
    assert zip_path.stat().st_size < MiB and tar_path.stat().st_size < MiB
    return {"zip": zip_path, "tar": tar_path}


_MEASURE = """
import json, sys, time
from pathlib import Path
from agegender_cli.data.archives import extract_archive
from agegender_cli.errors import AgeGenderError

def peak_kib():  # VmHWM starts afresh at exec, unlike ru_maxrss, which keeps the forking parent's peak
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    return int(line.split()[1])

before = peak_kib()
start = time.monotonic()
try:
    extract_archive(Path(sys.argv[1]), Path(sys.argv[2]))
    message = None
except AgeGenderError as exc:
    message = str(exc)
print(json.dumps({"message": message, "seconds": time.monotonic() - start, "grew_kib": peak_kib() - before,
                  "peak_kib": peak_kib()}))
"""


def _extract_measured(archive: Path, target: Path, **env: str) -> dict:
    """Extract in a fresh process: the error line, the time and how much its peak RSS grew."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(archive), str(target)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


linux_only = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmHWM from /proc")


@linux_only
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_bomb_is_refused_by_ratio_fast_in_little_memory_leaving_nothing(bombs, kind, tmp_path):
    got = _extract_measured(bombs[kind], tmp_path / "out" / "images")
    assert got["message"] and "archive_max_ratio" in got["message"] and "AGEGENDER_ARCHIVE_MAX_RATIO=" in got["message"]
    assert "\n" not in got["message"] and str(bombs[kind]) in got["message"]
    assert got["seconds"] < 10
    assert got["grew_kib"] < 40 * 1024, got  # chunks of 1 MiB, never a whole member
    assert _leftovers(tmp_path) == ["out"]  # the parent was made, nothing inside it


@linux_only
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_big_member_is_streamed_in_chunks_not_held_in_memory(bombs, kind, tmp_path):
    target = tmp_path / "images"
    got = _extract_measured(bombs[kind], target, AGEGENDER_ARCHIVE_MAX_RATIO="1e9")
    try:
        assert got["message"] is None, got
        assert (target / "20_0_0_20170116174525125.jpg").stat().st_size == BOMB_SIZE
        assert got["grew_kib"] < 40 * 1024, got  # 200 MiB went through; chunks of 1 MiB did
    finally:
        shutil.rmtree(target, ignore_errors=True)  # 200 MiB on a shared disk: gone at once


def test_bomb_is_refused_by_size_when_the_ratio_is_raised(bombs, tmp_path, monkeypatch):
    monkeypatch.setenv("AGEGENDER_ARCHIVE_MAX_RATIO", "1e9")
    monkeypatch.setenv("AGEGENDER_ARCHIVE_MAX_BYTES", str(50 * MiB))
    for kind, archive in bombs.items():
        with pytest.raises(AgeGenderError, match=r"exceed 50\.0 MiB \(archive_max_bytes\).*"
                                                 "AGEGENDER_ARCHIVE_MAX_BYTES=N"):
            extract_archive(archive, tmp_path / kind)
        assert not (tmp_path / kind).exists()
    assert _leftovers(tmp_path) == []


def test_one_bomb_member_among_incompressible_ones_is_refused_by_its_own_ratio(tmp_path, monkeypatch):
    monkeypatch.setenv("AGEGENDER_ARCHIVE_MAX_RATIO", "10")
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("25_0_0_20170116174525125.jpg", np.random.default_rng(0).bytes(4 * MiB))
        zf.writestr("26_0_0_20170116174525126.jpg", bytes(8 * MiB))
    assert (12 * MiB) / archive.stat().st_size < 10  # the whole archive passes
    with pytest.raises(AgeGenderError, match=r"member '26_0_0_20170116174525126.jpg' expands .* times.*"
                                             r"\(archive_max_ratio\)"):
        extract_archive(archive, tmp_path / "t")
    assert _leftovers(tmp_path) == []


def test_limits_parameter_overrides_the_environment(tmp_path):
    archive = tmp_path / "a.zip"
    _utk_zip(archive, 0, n=3)
    with pytest.raises(AgeGenderError, match="archive_max_members"):
        extract_archive(archive, tmp_path / "t", Limits(archive_max_members=2))
    assert extract_archive(archive, tmp_path / "t", Limits(archive_max_members=3)).is_dir()


def _patch_zip_sizes(path: Path, file_size: int) -> None:
    """Make the central directory claim `file_size` for the (only) member: a header that lies."""
    data = bytearray(path.read_bytes())
    at = data.rindex(b"PK\x01\x02")
    data[at + 24:at + 28] = file_size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_zip_header_claiming_fewer_bytes_than_it_holds_is_corrupt(tmp_path):
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("20_0_0_20170116174525125.jpg", np.random.default_rng(0).bytes(3 * MiB))
    _patch_zip_sizes(archive, 1000)
    with pytest.raises(AgeGenderError, match="corrupt") as err:
        extract_archive(archive, tmp_path / "t")
    assert "\n" not in str(err.value)
    assert _leftovers(tmp_path) == []


def test_zip_header_claiming_more_than_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv("AGEGENDER_ARCHIVE_MAX_BYTES", str(MiB))
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("20_0_0_20170116174525125.jpg", b"tiny")
    _patch_zip_sizes(archive, 2 * MiB)
    with pytest.raises(AgeGenderError, match="archive_max_bytes"):
        extract_archive(archive, tmp_path / "t")
    assert _leftovers(tmp_path) == []


def test_tar_member_bigger_than_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("AGEGENDER_ARCHIVE_MAX_BYTES", "1000")
    archive = _tar(tmp_path / "big.tar", (_member("small.jpg"), b"x" * 600), (_member("big.jpg"), b"y" * 600))
    with pytest.raises(AgeGenderError, match=r"exceed 1000 B \(archive_max_bytes\); raise it with "
                                             "AGEGENDER_ARCHIVE_MAX_BYTES=N"):
        extract_archive(archive, tmp_path / "t")
    assert _leftovers(tmp_path) == []


def test_bytes_beyond_a_members_declared_size_are_refused(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"")
    budget = archives._Budget(tmp_path / "x.zip", Limits())
    with pytest.raises(AgeGenderError, match="larger than the 10 bytes its header says"):
        archives._stream(tmp_path / "x.zip", "m.jpg", io.BytesIO(b"z" * 11), tmp_path / "m.jpg", 10, budget)


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_too_many_members_are_refused(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("AGEGENDER_ARCHIVE_MAX_MEMBERS", "5")
    if kind == "zip":
        archive = tmp_path / "many.zip"
        _utk_zip(archive, 0, n=6)
    else:
        archive = _tar(tmp_path / "many.tar.gz", *((_member(f"{k}.jpg"), b"x") for k in range(6)))
    with pytest.raises(AgeGenderError, match=r"more than 5 members \(archive_max_members\); raise it with "
                                             "AGEGENDER_ARCHIVE_MAX_MEMBERS=N"):
        extract_archive(archive, tmp_path / "t")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(("member", "why"), [
    (_member("../x.jpg"), "escape"),
    (_member("sub/../../x.jpg"), "escape"),
    (_member("/tmp/agegender-absolute.jpg"), "escape"),
    (_member("link.jpg", tarfile.SYMTYPE, "/etc/passwd"), "a link"),
    (_member("inside.jpg", tarfile.SYMTYPE, "ok.jpg"), "a link"),
    (_member("hard.jpg", tarfile.LNKTYPE, "ok.jpg"), "a link"),
    (_member("dev.jpg", tarfile.CHRTYPE), "device"),
    (_member("blk.jpg", tarfile.BLKTYPE), "device"),
    (_member("fifo.jpg", tarfile.FIFOTYPE), "FIFO"),
])
def test_hostile_tar_members_are_refused_leaving_nothing(tmp_path, member, why):
    archive = _tar(tmp_path / "evil.tar", (_member("ok.jpg"), b"fine"), (member, None))
    with pytest.raises(AgeGenderError, match=why) as err:
        extract_archive(archive, tmp_path / "out" / "images")
    assert "\n" not in str(err.value) and str(archive) in str(err.value)
    assert _leftovers(tmp_path) == ["out"]
    assert not Path("/tmp/agegender-absolute.jpg").exists()


def _zip_with(path: Path, name: str, data: bytes = b"x", mode: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.jpg", b"fine")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.create_system, info.external_attr = 3, mode << 16
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize(("name", "mode", "why"), [
    ("../x.jpg", None, "escape"),
    ("/tmp/agegender-absolute.jpg", None, "escape"),
    ("link.jpg", stat.S_IFLNK | 0o777, "a link"),
    ("fifo.jpg", stat.S_IFIFO | 0o644, "FIFO"),
])
def test_hostile_zip_members_are_refused_leaving_nothing(tmp_path, name, mode, why):
    archive = _zip_with(tmp_path / "evil.zip", name, b"/etc/passwd", mode)
    with pytest.raises(AgeGenderError, match=why):
        extract_archive(archive, tmp_path / "t")
    assert _leftovers(tmp_path) == []
    assert not Path("/tmp/agegender-absolute.jpg").exists()


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_member_listed_twice_is_refused_not_overwritten(tmp_path, kind):
    if kind == "zip":
        archive = tmp_path / "twice.zip"
        with warnings.catch_warnings(), zipfile.ZipFile(archive, "w") as zf:
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it is told to write
            zf.writestr("a.jpg", b"first")
            zf.writestr("a.jpg", b"second")
    else:
        archive = _tar(tmp_path / "twice.tar", (_member("a.jpg"), b"first"), (_member("a.jpg"), b"second"))
    with pytest.raises(AgeGenderError, match="listed twice"):
        extract_archive(archive, tmp_path / "t")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["utk.zip", "utk.tar.gz"])
def test_truncated_or_garbled_archives_are_one_line(tmp_path, name):
    archive = tmp_path / name
    if name.endswith(".zip"):
        _utk_zip(archive, 0)
    else:
        _tar(archive, *((_member(n), _jpeg(k)) for k, n in enumerate(_utk_names(0, 6))))
    whole = archive.read_bytes()
    for damaged in (whole[: len(whole) // 2], whole[:-10], whole[:-4], b"garbage" * 100,
                    whole[:40] + bytes(b ^ 0x55 for b in whole[40:200]) + whole[200:]):
        archive.write_bytes(damaged)
        with pytest.raises(AgeGenderError) as err:
            extract_archive(archive, tmp_path / "t")
        assert "\n" not in str(err.value) and str(archive) in str(err.value)
        assert _leftovers(tmp_path) == []


def test_an_interrupt_leaves_nothing_and_keeps_the_earlier_extraction(tmp_path, monkeypatch):
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    names = _utk_zip(first, 0)
    _utk_zip(second, 100)
    target = extract_archive(first, tmp_path / "images")
    calls = []

    def interrupt(self, n_bytes):
        calls.append(n_bytes)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(archives._Budget, "add", interrupt)
    with pytest.raises(KeyboardInterrupt):
        extract_archive(second, target)
    assert sorted(p.name for p in (target / "UTKFace").iterdir()) == sorted(names)
    assert _leftovers(tmp_path) == sorted(["images", f"images/{MARKER}", "images/UTKFace"]
                                          + [f"images/UTKFace/{n}" for n in names])


def test_a_second_archive_into_the_same_out_starts_clean(tmp_path):
    first, second, out = tmp_path / "first.zip", tmp_path / "second.zip", tmp_path / "out"
    old = _utk_zip(first, 0)
    new = _utk_zip(second, 100)
    build_dataset(DatasetConfig(sources=(first,), out=out))
    assert sorted(r.path.name for r in read_manifest(out / "manifest.csv")) == sorted(old)
    summary = build_dataset(DatasetConfig(sources=(second,), out=out))
    assert summary["n_usable"] == len(new) and summary["n_skipped"] == 0
    assert sorted(r.path.name for r in read_manifest(out / "manifest.csv")) == sorted(new)
    on_disk = sorted(p.name for p in (out / "images").rglob("*.jpg"))
    assert on_disk == sorted(new)
    # no partial or old folder; dataset.json: what the build left out of the manifest
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "images", "manifest.csv"]


def test_a_folder_not_made_by_the_tool_is_never_deleted(tmp_path):
    archive, out = tmp_path / "utk.zip", tmp_path / "out"
    _utk_zip(archive, 0)
    (out / "images").mkdir(parents=True)
    (out / "images" / "my-notes.txt").write_text("precious")
    with pytest.raises(AgeGenderError, match="not made by `agegender dataset`; move it away") as err:
        build_dataset(DatasetConfig(sources=(archive,), out=out))
    assert "\n" not in str(err.value)
    assert (out / "images" / "my-notes.txt").read_text() == "precious"
    assert sorted(p.name for p in out.rglob("*")) == ["images", "my-notes.txt"]


def test_an_empty_folder_and_a_parent_of_extractions_may_be_replaced(tmp_path):
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    _utk_zip(a, 0)
    names = _utk_zip(b, 100)
    (tmp_path / "out" / "images").mkdir(parents=True)
    extract_archive(a, tmp_path / "out" / "images" / "0-a.zip")  # as two sources are laid out
    extract_archive(b, tmp_path / "out" / "images")  # then one source into the same --out
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.jpg")) == sorted(names)


def test_two_archives_then_one_into_the_same_out(tmp_path):
    a, b, c = (tmp_path / f"{x}.zip" for x in "abc")
    out = tmp_path / "out"
    names = {path: _utk_zip(path, seed) for path, seed in ((a, 0), (b, 100), (c, 200))}
    for _ in range(2):  # the second run replaces each source's folder
        summary = build_dataset(DatasetConfig(sources=(a, b), out=out))
        assert summary["n_usable"] == 12 and summary["n_skipped"] == 0
    build_dataset(DatasetConfig(sources=(c,), out=out))
    assert sorted(r.path.name for r in read_manifest(out / "manifest.csv")) == sorted(names[c])
    assert sorted(p.name for p in out.rglob("*.jpg")) == sorted(names[c])


def test_fewer_archives_or_one_then_several_leave_no_stale_images(tmp_path):
    a, b, c = (tmp_path / f"{x}.zip" for x in "abc")
    out = tmp_path / "out"
    names = {path: _utk_zip(path, seed) for path, seed in ((a, 0), (b, 100), (c, 200))}
    build_dataset(DatasetConfig(sources=(a, b, c), out=out))
    build_dataset(DatasetConfig(sources=(a, b), out=out))  # c's folder from the first run must go
    assert sorted(p.name for p in out.rglob("*.jpg")) == sorted(names[a] + names[b])
    build_dataset(DatasetConfig(sources=(c,), out=out))
    build_dataset(DatasetConfig(sources=(a, tmp_path / "b.zip"), out=out))  # c, extracted whole, must go
    assert sorted(p.name for p in out.rglob("*.jpg")) == sorted(names[a] + names[b])
    user = out / "images" / "mine"
    user.mkdir()
    (user / "keep.txt").write_text("not the tool's")
    build_dataset(DatasetConfig(sources=(a, b), out=out))  # a folder the tool did not make is never deleted
    assert (user / "keep.txt").read_text() == "not the tool's"
    assert sorted(r.path.name for r in read_manifest(out / "manifest.csv")) == sorted(names[a] + names[b])


def test_a_file_in_the_way_is_one_line(tmp_path):
    archive = tmp_path / "utk.zip"
    _utk_zip(archive, 0)
    (tmp_path / "out").write_text("a file, not a folder")
    with pytest.raises(AgeGenderError) as err:
        extract_archive(archive, tmp_path / "out" / "images")
    assert "\n" not in str(err.value) and str(archive) in str(err.value)
    assert (tmp_path / "out").read_text() == "a file, not a folder"


def test_an_archive_inside_its_own_target_is_refused(tmp_path):
    _utk_zip(tmp_path / "a.zip", 0)
    target = extract_archive(tmp_path / "a.zip", tmp_path / "images")
    inside = target / "again.zip"
    inside.write_bytes((tmp_path / "a.zip").read_bytes())
    with pytest.raises(AgeGenderError, match="lies inside"):
        extract_archive(inside, target)
    assert inside.is_file()


def test_cli_refuses_a_bomb_with_one_line_and_exit_1(bombs, tmp_path):
    result = CliRunner().invoke(app, ["dataset", str(bombs["zip"]), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "archive_max_ratio" in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "images").exists()


def test_cli_refuses_an_escaping_member_with_one_line(tmp_path):
    archive = _tar(tmp_path / "evil.tar.gz", (_member("../../escaped.jpg"), _jpeg(0)))
    result = CliRunner().invoke(app, ["dataset", str(archive), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr
    assert "escape" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "escaped.jpg").exists() and not (tmp_path.parent / "escaped.jpg").exists()


# Downloads


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = np.random.default_rng(1).bytes(3 * MiB)

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up, as tested
            getattr(self, "_" + self.path.strip("/"))()

    def _head(self, length: int | None) -> None:
        self.send_response(200)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _ok(self) -> None:
        self._head(len(self.payload))
        self.wfile.write(self.payload)

    def _trickle(self) -> None:
        self._head(1000)
        for _ in range(1000):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.2)

    def _drop(self) -> None:
        self._head(len(self.payload))
        self.wfile.write(self.payload[: MiB])

    def _unsized(self) -> None:
        self._head(None)
        self.wfile.write(self.payload)


@pytest.fixture(scope="module")
def server():
    """A local server: /ok, /trickle (1 byte each 0.2 s), /drop (hangs up midway), /unsized (no length)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_gives_the_file_and_its_sha256(server, tmp_path):
    import hashlib

    dest = tmp_path / "w.bin"
    assert download(f"{server}/ok", dest, timeout=5) == hashlib.sha256(_Handler.payload).hexdigest()
    assert dest.read_bytes() == _Handler.payload
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.bin"]


def test_a_trickling_server_hits_the_deadline_and_leaves_nothing(server, tmp_path):
    start = time.monotonic()
    with pytest.raises(RouteFailed, match=r"took longer than 1 s .*AGEGENDER_DOWNLOAD_DEADLINE_S=N"):
        download(f"{server}/trickle", tmp_path / "w.bin", timeout=5, deadline=1)
    assert time.monotonic() - start < 3
    assert list(tmp_path.iterdir()) == []


def test_the_deadline_comes_from_the_limits(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGEGENDER_DOWNLOAD_DEADLINE_S", "0.5")
    start = time.monotonic()
    with pytest.raises(RouteFailed, match="took longer than 0.5 s"):
        download(f"{server}/trickle", tmp_path / "w.bin", timeout=5)
    assert time.monotonic() - start < 3 and list(tmp_path.iterdir()) == []


def test_a_server_that_never_answers_hits_the_deadline(tmp_path):
    with socket.socket() as silent:  # accepts the connection (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        start = time.monotonic()
        with pytest.raises(RouteFailed, match="took longer than 1 s"):
            download(f"http://127.0.0.1:{silent.getsockname()[1]}/x", tmp_path / "w.bin", timeout=30, deadline=1)
    assert time.monotonic() - start < 3 and list(tmp_path.iterdir()) == []


def test_a_dropped_connection_leaves_no_partial_file(server, tmp_path):
    with pytest.raises(RouteFailed, match="closed after"):
        download(f"{server}/drop", tmp_path / "w.bin", timeout=5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["ok", "unsized"])
def test_max_bytes_is_checked_up_front_and_while_counting(server, tmp_path, path):
    with pytest.raises(RouteFailed, match="more than the|larger than the"):
        download(f"{server}/{path}", tmp_path / "w.bin", timeout=5, max_bytes=MiB)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_midway_leaves_no_partial_file(server, tmp_path, monkeypatch):
    real = cache.hashlib.sha256
    updates = []

    class Interrupting:
        def __init__(self) -> None:
            self.digest = real()

        def update(self, block: bytes) -> None:
            updates.append(len(block))
            if len(updates) == 2:  # the first block is already on disk
                raise KeyboardInterrupt
            self.digest.update(block)

    monkeypatch.setattr(cache.hashlib, "sha256", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        download(f"{server}/ok", tmp_path / "w.bin", timeout=5)
    assert len(updates) == 2 and list(tmp_path.iterdir()) == []
