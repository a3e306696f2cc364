"""One flag that every long wait checks: set when the command is interrupted (Ctrl-C, SIGTERM), so that worker
threads (a download, a pip run) stop within a poll too, instead of holding the process until they finish."""

from __future__ import annotations

import atexit
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

POLL_S = 0.2  # how often a wait looks at the flag: a stop is answered within this (2 s is the promise)
_STOP = threading.Event()


class Stopped(Exception):
    """Raised in a worker thread whose command was interrupted; the main thread reports the interrupt itself."""


def request_stop() -> None:
    """The command was interrupted: every wait that checks stop_requested() ends."""
    _STOP.set()


def stop_requested() -> bool:
    return _STOP.is_set()


def clear() -> None:
    """For a new command in the same process (the tests, the Python API)."""
    _STOP.clear()


def check() -> None:
    """Raise Stopped if the command was interrupted."""
    if _STOP.is_set():
        raise Stopped("interrupted")


def result(future: Future, timeout: float | None = None) -> Any:
    """future.result(), waiting in short polls: a signal reaches the main thread's handler even where the kernel
    delivers it to a worker thread (a lock wait without a timeout never wakes up for it). TimeoutError after
    `timeout` seconds, when given."""
    ends = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return future.result(timeout=POLL_S if ends is None else max(0.0, min(POLL_S, ends - time.monotonic())))
        except TimeoutError:
            if ends is not None and time.monotonic() >= ends:
                raise


def background(fn: Callable[..., Any], *args: Any, name: str, wait_at_exit: bool = True, **kwargs: Any) -> Future:
    """fn(*args, **kwargs) in a daemon thread: a wait inside it that the flag cannot reach (a read from a server
    that sent nothing) does not keep an interrupted process alive past EXIT_JOIN_S, as a ThreadPoolExecutor's
    worker would (joined without a bound at exit). Work that ends by itself (a model loading) is waited for, so
    that no library is torn down under a running thread; `wait_at_exit=False` for work that may never end
    (ray.init retrying an address)."""
    future: Future = Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            future.set_exception(exc)

    thread = threading.Thread(target=work, name=name, daemon=True)
    if wait_at_exit:
        if not _workers:
            atexit.register(_join_workers)
        _workers.append(thread)
    thread.start()
    return future


EXIT_JOIN_S = 15.0  # at exit, the longest wait for background work (an ONNX export of facenet takes ~6 s)
_workers: list[threading.Thread] = []


def _join_workers() -> None:
    ends = time.monotonic() + EXIT_JOIN_S
    for thread in _workers:
        thread.join(max(0.0, ends - time.monotonic()))


def run(command: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run(capture_output, text) bounded by `timeout` and by a stop: the child is killed and
    subprocess.TimeoutExpired or Stopped raised."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        ends = time.monotonic() + timeout
        while True:
            try:
                out, err = child.communicate(timeout=POLL_S)
                return subprocess.CompletedProcess(command, child.returncode, out, err)
            except subprocess.TimeoutExpired:
                if _STOP.is_set() or time.monotonic() >= ends:
                    child.kill()
                    child.communicate()
                    if _STOP.is_set():
                        raise Stopped("interrupted") from None
                    raise subprocess.TimeoutExpired(command, timeout) from None
