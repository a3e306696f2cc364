"""A hostile-input run: made-up bad files and options through the real `agegender` command, one process each.

For every case it prints the exit code, the wall time, the peak memory of that process, whether a Python
traceback appeared, and whether anything was written outside the place the case names (a snapshot of the work
folder before and after, the case's own output excepted). It ends with one line: cases, tracebacks, hangs,
writes outside the target, and the largest peak memory.
Usage: python benchmarks/hostile_inputs.py [--timeout 300] [--only SUBSTRING] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

AGEGENDER = str(Path(sys.executable).with_name("agegender"))
FACE = Path(__file__).resolve().parents[1] / "examples" / "grace_hopper.jpg"


@dataclass
class Case:
    name: str
    args: list[str]
    allowed: list[str] = field(default_factory=list)  # paths (relative to the work folder) the case may write
    stdin: bytes | None = None
    expect: tuple[int, ...] = (1, 2)  # a hostile input must fail cleanly; some are fine and give 0
    term_after: str | None = None  # SIGTERM once this text shows on stderr; the seconds to exit are reported
    env: dict[str, str] = field(default_factory=dict)  # "{work}" and "{trickle}" are filled in


def jpeg(path: Path, height: int, width: int, quality: int = 50) -> Path:
    import cv2

    rng = np.random.default_rng(0)
    image = cv2.resize(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), (width, height))
    path.write_bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, side: int) -> Path:
    """A side x side grey PNG of zeros: a few hundred KB that decode to side^2 bytes."""
    row, packer = b"\0" * (side + 1), zlib.compressobj(9)
    raw = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", raw)
                     + png_chunk(b"IEND", b""))
    return path


def make_files(work: Path) -> None:
    """Every hostile file the cases use, small on disk."""
    import cv2

    (work / "in").mkdir()
    shutil.copy(FACE, work / "in" / "face.jpg")
    bomb_png(work / "in" / "bomb.png", 30000)
    jpeg(work / "in" / "huge.jpg", 12000, 12000, quality=5)
    (work / "in" / "empty.jpg").write_bytes(b"")
    (work / "in" / "random.jpg").write_bytes(np.random.default_rng(1).bytes(5000))
    face = FACE.read_bytes()
    (work / "in" / "truncated.jpg").write_bytes(face[: len(face) // 3])
    (work / "in" / "text.png").write_text("hello")
    (work / "in" / "folder.jpg").mkdir()
    os.mkfifo(work / "in" / "fifo.jpg")
    writer = cv2.VideoWriter(str(work / "in" / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(30):
        writer.write(np.full((48, 64, 3), i * 8, np.uint8))
    writer.release()
    clip = (work / "in" / "clip.avi").read_bytes()
    (work / "in" / "clip.avi").write_bytes(clip[: len(clip) // 2])
    (work / "in" / "random.mp4").write_bytes(np.random.default_rng(2).bytes(3000))
    with open(os.path.join(os.fsencode(work / "in"), b"caf\xe9.jpg"), "wb") as handle:
        handle.write(face)

    utk = work / "utk"
    utk.mkdir()
    for k, age in enumerate((1, 5, 10, 18, 28, 40, 50, 70) * 2):
        jpeg(utk / f"{age}_{k % 2}_1_2017010{k % 9}1234567{k % 10}.jpg", 32 + k, 32)
    header = "path,age,gender,race,age_class,split\n"
    first = sorted(utk.iterdir())[0].name
    (work / "manifest_escape.csv").write_text(header + f"utk/{first},1,0,1,0,../../escaped\n")
    (work / "manifest_ok.csv").write_text(header + f"utk/{first},1,0,1,0,test\n")
    (work / "manifest_age.csv").write_text(header + f"utk/{first},old,0,1,0,test\n")
    (work / "manifest_short.csv").write_text(header + f"utk/{first},1\n")
    (work / "manifest_binary.csv").write_bytes(header.encode() + b"\0\xff\xfe" * 50)
    (work / "manifest_huge.csv").write_text(header + "a" * 2_000_000 + ",1,0,1,0,test\n")

    with zipfile.ZipFile(work / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("1_0_0_20170101000000000.jpg", b"\0" * (400 * 2**20))
    with zipfile.ZipFile(work / "escape.zip", "w") as archive:
        archive.writestr("../../escaped.jpg", face)
    with tarfile.open(work / "link.tar", "w") as archive:
        info = tarfile.TarInfo("1_0_0_20170101000000000.jpg")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info)
    with tarfile.open(work / "device.tar", "w") as archive:
        info = tarfile.TarInfo("null.jpg")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        archive.addfile(info)
    (work / "truncated.tar.gz").write_bytes(gzip_of_tar(utk)[:500])

    (work / "tiny.pb").write_bytes(huge_constant_graph())
    (work / "garbage.pt").write_bytes(np.random.default_rng(3).bytes(2000))
    (work / "caffe").mkdir()
    for name in ("age_net", "gender_net"):
        (work / "caffe" / f"{name}.prototxt").write_text("layer { what")
        (work / "caffe" / f"{name}.caffemodel").write_bytes(np.random.default_rng(4).bytes(500))
    (work / "a_file").write_text("mine")
    (work / "outdir").mkdir()
    (work / "mine.png").write_bytes(b"my figure")
    (work / "mine").mkdir()
    (work / "mine" / "face.jpg").write_bytes(b"my own face.jpg")
    (work / "theirs").mkdir()
    (work / "theirs" / "manifest.csv").write_text("name,score\nalice,3\n")
    (work / "manifest_devzero.csv").write_text(header + "/dev/zero,30,0,1,4,test\n" * 3)
    shutil.copy(FACE, work / "in" / "=cmd|' calc'!A0.jpg")
    (work / "runs" / "caffe").mkdir(parents=True)
    (work / "runs" / "caffe" / "run.json").write_text('{"arch": "caffenet", "format": "agegender-run/1"}\n')
    (work / "runs" / "caffe" / "history.json").write_text("[]\n")


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def huge_constant_graph() -> bytes:
    """A GraphDef of one Const node whose float tensor declares 2^20 x 2^20 x 2^10 elements (4 PiB)."""
    shape = b"".join(field(2, varint(1 << 3) + varint(1 << 20)) for _ in range(2)) + field(2, b"\x08" + varint(1024))
    tensor = b"\x08\x01" + field(2, shape)  # dtype float, tensor_shape
    attr = field(1, b"value") + field(2, field(8, tensor))  # AttrValue.tensor
    node = field(1, b"w") + field(2, b"Const") + field(5, attr)
    return field(1, node)


def gzip_of_tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname="utk")
    return buffer.getvalue()


def cases() -> list[Case]:
    fast = ["--arch", "caffenet", "--detector", "none"]
    return [
        Case("pixel bomb PNG (30000x30000, 0.1 MB)", ["predict", "in/bomb.png", *fast]),
        Case("12000x12000 JPEG with MTCNN", ["predict", "in/huge.jpg", "--arch", "caffenet"]),
        Case("empty, random, truncated, text, folder, FIFO, bad name", ["predict", "in/empty.jpg", "in/random.jpg",
             "in/truncated.jpg", "in/text.png", "in/folder.jpg", "in/fifo.jpg", os.fsdecode(b"in/caf\xe9.jpg"), *fast]),
        Case("whole input folder, CSV", ["predict", "in", *fast, "--csv", "out.csv"], ["out.csv"]),
        Case("truncated and random videos", ["predict", "in/clip.avi", "in/random.mp4", "--arch", "caffenet"]),
        Case("paths on stdin, one missing", ["predict", "-", *fast], stdin=b"in/face.jpg\nnope.jpg\n"),
        Case("--csv /dev/null", ["predict", "in/face.jpg", *fast, "--csv", "/dev/null"], expect=(0,)),
        Case("--csv /dev/full (disk full)", ["predict", "in/face.jpg", *fast, "--csv", "/dev/full"]),
        Case("--csv - (stdout)", ["predict", "in/face.jpg", *fast, "--csv", "-"], expect=(0,)),
        Case("--csv naming an input", ["predict", "in/face.jpg", *fast, "--csv", "in/face.jpg"]),
        Case("--csv a folder", ["predict", "in/face.jpg", *fast, "--csv", "outdir"]),
        Case("--annotate an existing file", ["predict", "in/face.jpg", *fast, "--annotate", "a_file"]),
        Case("--annotate into the input folder", ["predict", "in/face.jpg", *fast, "--annotate", "in"],
             ["in/face-2.jpg"], expect=(0,)),
        Case("--annotate under /proc", ["predict", "in/face.jpg", *fast, "--annotate", "/proc/agegender"]),
        Case("preprocess: manifest split ../../escaped", ["preprocess", "--manifest", "manifest_escape.csv",
                                                          "--out", "pre"]),
        Case("preprocess into the input's folder", ["preprocess", "in/face.jpg", "--out", "in"], ["in/face.png"],
             expect=(0,)),
        Case("preprocess --clahe-tile 0", ["preprocess", "in/face.jpg", "--out", "pre", "--clahe-tile", "0"]),
        Case("preprocess --gabor-sigma nan", ["preprocess", "in/face.jpg", "--out", "pre", "--gabor-sigma", "nan"]),
        Case("preprocess --gabor-kernel 99999", ["preprocess", "in/face.jpg", "--out", "pre", "--gabor-kernel",
                                                 "99999"]),
        Case("preprocess --out a file", ["preprocess", "in/face.jpg", "--out", "a_file"]),
        Case("evaluate: age 'old' in a manifest", ["evaluate", "--arch", "caffenet", "--manifest",
                                                   "manifest_age.csv"]),
        Case("evaluate: short row", ["evaluate", "--arch", "caffenet", "--manifest", "manifest_short.csv"]),
        Case("evaluate: binary manifest", ["evaluate", "--arch", "caffenet", "--manifest", "manifest_binary.csv"]),
        Case("evaluate: 2 MB field", ["evaluate", "--arch", "caffenet", "--manifest", "manifest_huge.csv"]),
        Case("compare --report naming the manifest", ["compare", "--manifest", "manifest_ok.csv", "--report",
                                                      "manifest_ok.csv"]),
        Case("dataset: zip bomb (400 MB of zeros)", ["dataset", "bomb.zip", "--out", "ds"], ["ds"]),
        Case("dataset: ../ member", ["dataset", "escape.zip", "--out", "ds"], ["ds"]),
        Case("dataset: symlink member", ["dataset", "link.tar", "--out", "ds"], ["ds"]),
        Case("dataset: device member", ["dataset", "device.tar", "--out", "ds"], ["ds"]),
        Case("dataset: truncated .tar.gz", ["dataset", "truncated.tar.gz", "--out", "ds"], ["ds"]),
        Case("dataset --out a file", ["dataset", "utk", "--out", "a_file"]),
        Case("backbone: 46-byte .pb declaring a 4 PiB constant", ["predict", "in/face.jpg", "--arch", "facenet",
                                                              "--detector", "none", "--backbone-weights", "tiny.pb"]),
        Case("facenet model: random bytes", ["predict", "in/face.jpg", "--detector", "none", "--arch", "facenet",
                                             "--model", "facenet=garbage.pt"]),
        Case("caffenet model: garbage prototxt", ["predict", "in/face.jpg", *fast, "--model", "caffenet=caffe"]),
        Case("caffenet model: garbage, OpenCV engine", ["predict", "in/face.jpg", *fast, "--model",
                                                         "caffenet=caffe", "--engine", "opencv"]),
        Case("--caffe-weights on a garbage folder", ["predict", "in/face.jpg", *fast, "--caffe-weights", "caffe"]),
        Case("train --epochs 0", ["train", "--arch", "caffenet", "--epochs", "0"]),
        Case("train --lr nan", ["train", "--arch", "caffenet", "--lr", "nan"]),
        Case("--threads 0", ["--threads", "0", "predict", "in/face.jpg"]),
        Case("bad AGEGENDER_MAX_IMAGE_PIXELS", ["predict", "in/face.jpg", *fast]),
        # round 3 (issue 31)
        Case("evaluate: manifest rows naming /dev/zero", ["evaluate", "--arch", "caffenet", "--manifest",
                                                          "manifest_devzero.csv"]),
        Case("evaluate --labels /dev/zero", ["evaluate", "--arch", "caffenet", "--labels", "/dev/zero"]),
        Case("compare --report naming a JPEG", ["compare", "--manifest", "manifest_ok.csv", "--report",
                                                "in/face.jpg"]),
        Case("train --resume a caffenet run as facenet", ["train", "--arch", "facenet", "--resume", "--out",
                                                          "runs/caffe"]),
        Case("formula file name into --csv", ["predict", "in/=cmd|' calc'!A0.jpg", *fast, "--csv", "formula.csv"],
             ["formula.csv"], expect=(0,)),
        Case("--ray-address 127.0.0.1:1 (nothing there)", ["predict", "in/face.jpg", *fast, "--ray",
                                                           "--ray-address", "127.0.0.1:1", "--out", "rayout"]),
        Case("--ray-address where something other than Ray listens", ["predict", "in/face.jpg", *fast, "--ray",
             "--ray-address", "{listener}", "--out", "rayout"], env={"AGEGENDER_RAY_JOIN_S": "10"}),
        Case("--csv over a file agegender did not write", ["predict", "in/face.jpg", *fast, "--csv", "a_file"]),
        Case("--summary-plot over a file agegender did not write", ["predict", "in/face.jpg", *fast,
                                                                    "--summary-plot", "mine.png"]),
        Case("--annotate into a folder holding a file of the output's name", ["predict", "in/face.jpg", *fast,
                                                                              "--annotate", "mine"],
             ["mine/face-2.jpg"], expect=(0,)),
        Case("dataset --out holding another manifest.csv", ["dataset", "utk", "--out", "theirs"]),
        Case("--ray-actors 10000 on this machine", ["predict", "in/face.jpg", *fast, "--ray", "--ray-actors",
                                                    "10000", "--out", "rayout"], ["rayout"], expect=(0,)),
        Case("SIGTERM during a trickling backbone download", ["predict", "in/face.jpg", "--arch", "facenet",
                                                              "--detector", "none", "--engine", "torch",
                                                              "--precision", "fp32"],
             ["home"], expect=(143,), term_after="downloading",
             env={"AGEGENDER_HOME": "{work}/home", "AGEGENDER_BACKBONE_URL_BASE": "{trickle}"}),
    ]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Size and time of every file and link (folders change their time whenever a file is added)."""
    out = {}
    for path in root.rglob("*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        if not path.is_dir() or path.is_symlink():
            out[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return out


def trickle_server() -> str:
    """A local server that promises 100 MB and sends a byte every 0.1 s (a download that would take days)."""
    import http.server
    import threading

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", str(100_000_000))
            self.end_headers()
            try:
                for _ in range(100_000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def run(case: Case, work: Path, timeout: float, env: dict[str, str]) -> dict:
    before = snapshot(work)
    escaped_before = Path("/tmp/escaped.jpg").exists() or (work.parent / "escaped").exists()
    if "AGEGENDER_MAX_IMAGE_PIXELS" in case.name:
        env = {**env, "AGEGENDER_MAX_IMAGE_PIXELS": "lots"}
    args, silent = case.args, None
    if case.env:
        trickle = trickle_server() if any("{trickle}" in v for v in case.env.values()) else ""
        env = {**env, **{k: v.format(work=work, trickle=trickle) for k, v in case.env.items()}}
    if "{listener}" in args:  # a port that accepts connections and never says a word
        import socket

        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        args = [f"127.0.0.1:{silent.getsockname()[1]}" if a == "{listener}" else a for a in args]
    stderr_file = tempfile.TemporaryFile()  # noqa: SIM115 - read while the case runs, closed below
    start = time.perf_counter()
    process = subprocess.Popen([AGEGENDER, *args], cwd=work, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=stderr_file)
    if case.stdin is not None:
        process.stdin.write(case.stdin)
    process.stdin.close()
    hang, termed = False, None
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if case.term_after and termed is None:
            stderr_file.seek(0)
            if case.term_after.encode() in stderr_file.read():
                time.sleep(0.5)
                process.send_signal(signal.SIGTERM)
                termed = time.perf_counter()
        if time.perf_counter() - start > timeout:
            hang = True
            process.send_signal(signal.SIGKILL)
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if silent is not None:
        silent.close()
    stdout = process.stdout.read().decode(errors="replace")
    stderr_file.seek(0)
    stderr = stderr_file.read().decode(errors="replace")
    stderr_file.close()
    after = snapshot(work)
    changed = {p for p in after if before.get(p) != after[p]} | (set(before) - set(after))
    outside = sorted(p for p in changed if not any(p == a or p.startswith(a + "/") for a in case.allowed))
    escaped = (Path("/tmp/escaped.jpg").exists() or (work.parent / "escaped").exists()) and not escaped_before
    code = os.waitstatus_to_exitcode(status)
    lines = [line.strip("│╭╮╰╯─ ") for line in stderr.splitlines() if "━" not in line]
    lines = [line for line in lines if line and line != "Error"]
    error_lines = [line for line in lines if "error" in line.lower() or "Invalid" in line] or lines[-1:] or [""]
    if termed is not None:
        error_lines.append(f"exited {time.perf_counter() - termed:.1f} s after SIGTERM: {error_lines[-1]}")
    return {"case": case.name, "code": code, "seconds": seconds, "peak_mb": usage.ru_maxrss / 1024,
            "traceback": "Traceback" in stderr + stdout, "hang": hang, "outside": outside + (["ESCAPED"] if escaped
                                                                                              else []),
            "expected": code in case.expect, "message": error_lines[-1][:150]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a case counts as a hang")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--make-files", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_files:
        make_files(args.make_files)
        return
    root = Path(tempfile.mkdtemp(prefix="agegender-hostile-"))
    work = root / "work"
    work.mkdir()
    # made in another process: a child inherits its parent's peak memory, which would show in every case
    subprocess.run([sys.executable, __file__, "--make-files", str(work)], check=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    results = []
    writer = csv.writer(sys.stdout, delimiter="\t")
    writer.writerow(["case", "exit", "s", "peak MB", "traceback", "hang", "written outside", "message"])
    for case in cases():
        if args.only in case.name:
            r = run(case, work, args.timeout, env)
            results.append(r)
            writer.writerow([r["case"], r["code"], f"{r['seconds']:.1f}", f"{r['peak_mb']:.0f}",
                             "YES" if r["traceback"] else "no", "YES" if r["hang"] else "no",
                             ",".join(r["outside"]) or "-", r["message"]])
            sys.stdout.flush()
    print(f"{len(results)} cases: {sum(r['traceback'] for r in results)} tracebacks, "
          f"{sum(r['hang'] for r in results)} hangs, {sum(bool(r['outside']) for r in results)} writing outside "
          f"their target, {sum(not r['expected'] for r in results)} unexpected exit codes, largest peak "
          f"{max(r['peak_mb'] for r in results):.0f} MB")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"work folder: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
