"""The tool's cache folder, checked downloads and route failures, shared by every architecture."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from agegender_cli import stopping
from agegender_cli.limits import current_limits, raise_hint

HOME_ENV = "AGEGENDER_HOME"
CHUNK = 1 << 20

Log = Callable[[str], None]


class RouteFailed(Exception):
    """One route (download, pip, conversion) did not give usable weights; the resolver tries the next."""


def print_to_stderr(message: str) -> None:
    """The default `log`: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Root of the tool's cache: $AGEGENDER_HOME, else the platform's user cache dir."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("agegender"))


def download(url: str, dest: Path, timeout: float, deadline: float | None = None, max_bytes: int | None = None
             ) -> str:
    """Stream `url` into `dest`; return its sha256. The whole call takes at most `deadline` seconds (the
    download_deadline_s limit by default) plus one read's `timeout`, and `max_bytes` when given; RouteFailed
    on any failure, and then (or on an interrupt) no file is left behind."""
    import http.client  # here, not at the top: every start-up reads this module, few ever download
    import urllib.error

    limit = current_limits().download_deadline_s if deadline is None else deadline
    start = time.monotonic()
    dest = Path(dest)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what a plain open() would
    except OSError as exc:
        raise RouteFailed(f"download failed (cannot write beside {dest}: {exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _stream(url, out, min(timeout, limit), start, limit, max_bytes)
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        Path(tmp).unlink(missing_ok=True)
        if time.monotonic() - start >= limit:
            raise RouteFailed(_too_slow(limit)) from exc
        raise RouteFailed(f"download failed ({getattr(exc, 'reason', exc)})") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def _stream(url: str, out: BinaryIO, timeout: float, start: float, limit: float, max_bytes: int | None
            ) -> str:
    """Copy the response into `out`, checking the deadline between reads; the sha256 of what came."""
    import urllib.request

    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "agegender"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length", "").strip()
        declared = int(length) if length.isdigit() else None
        if max_bytes is not None and declared is not None and declared > max_bytes:
            raise RouteFailed(f"the server announces {declared:,} bytes, more than the {max_bytes:,} allowed")
        read = getattr(response, "read1", response.read)  # read1: what has arrived, not a full chunk's wait
        received = 0
        while True:
            stopping.check()
            if time.monotonic() - start >= limit:
                raise RouteFailed(_too_slow(limit))
            block = read(CHUNK)
            if not block:
                break
            received += len(block)
            if max_bytes is not None and received > max_bytes:
                raise RouteFailed(f"the download is larger than the {max_bytes:,} bytes allowed")
            digest.update(block)
            out.write(block)
    if declared is not None and received != declared:  # read1 ends quietly where the server hung up
        raise RouteFailed(f"the connection closed after {received:,} of {declared:,} bytes")
    return digest.hexdigest()


def _too_slow(limit: float) -> str:
    return f"download took longer than {limit:g} s (download_deadline_s); {raise_hint('download_deadline_s')}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
