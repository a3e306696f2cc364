"""A real Ray cluster on this machine for the tests and benchmarks: a head and worker "nodes" started with
`ray start`, as a user starts them, each in its own process group and temp folder, with token authentication."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_LIMIT_S = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RayCluster:
    """A head with no CPUs (it schedules, it does not compute) and workers of `cpus` CPUs each."""

    folder: Path
    token: str
    port: int
    client_port: int
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client_address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    def env(self, *, token: str | None = None, mode: str | None = "token") -> dict[str, str]:
        """An environment for a client: token mode and the token file, or what the arguments say (None: unset)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        if mode is not None:
            env["RAY_AUTH_MODE"] = mode
        path = self.folder / "client-token"
        path.write_text(self.token if token is None else token)
        env["RAY_AUTH_TOKEN_PATH"] = str(path)
        return env

    def _start(self, args: list[str], log: str) -> None:
        env = self.env()
        env["RAY_AUTH_TOKEN_PATH"] = str(self.folder / "token")
        ray = str(Path(sys.executable).with_name("ray"))
        self.logs.append(self.folder / log)
        with open(self.folder / log, "wb") as out:
            self.processes.append(subprocess.Popen([ray, "start", "--block", *args], stdout=out, stderr=out,
                                                   env=env, start_new_session=True))

    def start_head(self) -> None:
        ports = [free_port() for _ in range(4)]
        self._start(["--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false",
                     f"--ray-client-server-port={self.client_port}", f"--temp-dir={self.folder / 'ray'}",
                     f"--dashboard-agent-listen-port={ports[0]}", f"--dashboard-agent-grpc-port={ports[1]}",
                     f"--metrics-export-port={ports[2]}", f"--runtime-env-agent-port={ports[3]}",
                     "--min-worker-port=0", "--max-worker-port=0"], "head.log")
        self.wait_for(cpus=0)

    def add_worker(self, cpus: int = 1) -> None:
        ports = [free_port() for _ in range(4)]
        self._start([f"--address={self.address}", f"--num-cpus={cpus}",
                     f"--dashboard-agent-listen-port={ports[0]}", f"--dashboard-agent-grpc-port={ports[1]}",
                     f"--metrics-export-port={ports[2]}", f"--runtime-env-agent-port={ports[3]}",
                     "--min-worker-port=0", "--max-worker-port=0"], f"worker{len(self.processes)}.log")

    def wait_for(self, cpus: int) -> None:
        """Until the cluster holds `cpus` CPUs (asked of its GCS from a child, so this process stays clean)."""
        ask = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
               "print(int(ray.cluster_resources().get('CPU', 0)))")
        deadline = time.monotonic() + START_LIMIT_S
        while time.monotonic() < deadline:
            for process, log in zip(self.processes, self.logs, strict=True):
                if process.poll() is not None:
                    raise RuntimeError(f"ray start ended ({log.name}): {log.read_text()[-1500:]}")
            done = subprocess.run([sys.executable, "-c", ask, self.address], capture_output=True, text=True,
                                  env=self.env(), timeout=60)
            if done.returncode == 0 and done.stdout.strip() == str(cpus):
                return
            time.sleep(1)
        raise TimeoutError(f"the cluster did not reach {cpus} CPUs in {START_LIMIT_S:g} s")

    def stop(self) -> None:
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(workers: int = 1, cpus: int = 1) -> RayCluster:
    folder = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: Ray's socket paths have a length limit
    cluster = RayCluster(folder, secrets.token_hex(32), free_port(), free_port())
    (folder / "token").write_text(cluster.token)
    try:
        cluster.start_head()
        for n in range(workers):  # one at a time: two nodes starting at once on 2 cores time out
            cluster.add_worker(cpus)
            cluster.wait_for((n + 1) * cpus)
    except BaseException:
        cluster.stop()
        raise
    return cluster
