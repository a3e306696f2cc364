"""The tool's cache folder, checked downloads and route failures, shared by every architecture."""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

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


def download(url: str, dest: Path, timeout: float) -> str:
    """Stream `url` into `dest`; return its sha256. Raise RouteFailed on any network failure."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "agegender"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            while block := response.read(CHUNK):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise RouteFailed(f"download failed ({getattr(exc, 'reason', exc)})") from exc
    return digest.hexdigest()
