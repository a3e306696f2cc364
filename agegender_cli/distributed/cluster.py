"""Joining a Ray cluster (token authentication included) and sizing the model actors to its nodes."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agegender_cli.config import RayConfig
from agegender_cli.errors import AgeGenderError
from agegender_cli.progress import SILENT, Reporter

INSTALL_HINT = "--ray needs Ray: pip install 'agegender[ray]'"
CONNECT_TIMEOUT_S = 3.0  # a head that does not accept a connection in this long is not there
CLIENT_ATTEMPTS = 3  # joins through Ray Client tried, where the head fails to start the client's server
PROBE_TIMEOUT_S = 5.0  # a Ray that accepts the connection answers a first request in far less
TOKEN_HINT = ("set RAY_AUTH_MODE=token and give the token `ray get-auth-token` prints on the head node: in "
              "RAY_AUTH_TOKEN, in a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token")


def import_ray():
    try:
        import ray
    except ImportError:
        raise AgeGenderError(INSTALL_HINT) from None
    return ray


def connect(ray, ray_cfg: RayConfig, reporter: Reporter = SILENT) -> bool:
    """Join the cluster at the address, or start a local Ray; whether this run started it (and so stops it).
    A Ray already initialised in this process (a notebook, a test) is used as it is. The workers' output stays
    in the cluster's logs: Ray would print it on the driver's stdout, which holds the results (`--json`)."""
    if ray.is_initialized():
        return False
    if ray_cfg.address == "local":
        reporter.message("starting a local Ray")
        try:
            ray.init(address="local", num_cpus=ray_cfg.local_cpus, include_dashboard=False,
                     logging_level="WARNING", log_to_driver=False)
        except ray.exceptions.AuthenticationError as exc:  # e.g. RAY_AUTH_TOKEN_PATH naming a file since removed
            raise AgeGenderError(f"cannot start a local Ray: {str(exc).strip().splitlines()[0]}") from None
        return True
    address = ray_cfg.address
    reachable(address)
    token = use_token_if_available()
    probe(address, token)
    reporter.message(f"joining the Ray cluster at {address}" + (f" (token from {token})" if token else ""))
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            _bounded(lambda: ray.init(address=address, logging_level="WARNING", log_to_driver=False), address)
            return True
        except (ConnectionError, RuntimeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if address.startswith("ray://") and "Initialization failure" in reason and attempt < CLIENT_ATTEMPTS:
                # the Ray Client server starts a server process per client, which can fail on a busy head
                reporter.message(f"Ray Client: the head could not start a server for this client ({reason}); "
                                 "trying again")
                time.sleep(attempt)
                continue
            raise AgeGenderError(f"--ray-address {address}: cannot join a Ray cluster there ({reason})") from None
    return True


def token_source() -> str | None:
    """Where Ray would read a token from (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token), or None."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if path := os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH={path}" if Path(path).is_file() else None
    default = Path.home() / ".ray" / "auth_token"
    return "~/.ray/auth_token" if default.is_file() else None


def use_token_if_available() -> str | None:
    """Token mode for this process and its children where RAY_AUTH_MODE is unset and a token is at hand, as
    Ray's own `ray start --address` and `auto` do (Ray enables token authentication by default since 2.59; a
    client naming an address does not): where the token comes from, or None when token mode is off."""
    mode = os.environ.get("RAY_AUTH_MODE")
    source = token_source()
    if mode is not None:
        return source if mode.lower() == "token" else None
    if source is None:
        return None
    os.environ["RAY_AUTH_MODE"] = "token"
    try:  # Ray caches its configuration: refresh it so that this process sees token mode too
        from ray._raylet import Config

        Config.initialize("")
    except (ImportError, AttributeError):
        pass
    return source


def _auth_failure(address: str, token: str | None) -> AgeGenderError:
    if token is None:
        return AgeGenderError(f"--ray-address {address}: the cluster asks for a token (Ray's token authentication); "
                              f"{TOKEN_HINT}")
    return AgeGenderError(f"--ray-address {address}: the cluster refused the token from {token}; {TOKEN_HINT}")


def probe(address: str, token: str | None) -> None:
    """Ask the cluster one question before joining, so that a missing or wrong token is told at once (ray.init
    retries it for 20-30 s and then names no cause). Skipped where Ray's internals it uses are not there."""
    from agegender_cli import stopping

    def ask() -> str | None:
        return _probe_client(address) if address.startswith("ray://") else _probe_gcs(address)

    try:
        refused = stopping.result(stopping.background(ask, name="ray-probe", wait_at_exit=False),
                                  timeout=PROBE_TIMEOUT_S)
    except TimeoutError:
        return  # left to ray.init's own bounded join
    if refused:
        raise _auth_failure(address, token)


def _probe_gcs(address: str) -> str | None:
    """'refused' where the head's GCS rejects this process's token (or its lack of one)."""
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:
        return None
    try:
        GcsClient(address=_resolved(address))
    except AuthenticationError:
        return "refused"
    except Exception:  # noqa: BLE001 - anything else is for ray.init to report in its words
        return None
    return None


def _probe_client(address: str) -> str | None:
    """'refused' where a Ray Client server answers UNAUTHENTICATED."""
    try:
        import grpc
        from ray._private.grpc_utils import init_grpc_channel
        from ray.core.generated import ray_client_pb2, ray_client_pb2_grpc
    except ImportError:
        return None
    channel = init_grpc_channel(address.removeprefix("ray://"), options=[], asynchronous=False)
    try:
        request = ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING)
        ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(request, timeout=PROBE_TIMEOUT_S)
    except grpc.RpcError as exc:
        return "refused" if exc.code() == grpc.StatusCode.UNAUTHENTICATED else None
    finally:
        channel.close()
    return None


def _resolved(address: str) -> str:
    """HOST:PORT of `auto` (RAY_ADDRESS, or the cluster started on this machine), else the address itself."""
    if address != "auto":
        return address
    from ray._private.services import canonicalize_bootstrap_address_or_die

    return canonicalize_bootstrap_address_or_die("auto")


def _bounded(join, address: str) -> None:
    """ray.init within the ray_join_s limit, answering Ctrl-C and SIGTERM: it runs in a daemon thread that an
    address where something other than Ray listens keeps retrying for ever (so exit does not wait for it)."""
    from agegender_cli import stopping
    from agegender_cli.limits import current_limits, raise_hint

    limit = current_limits().ray_join_s
    try:
        stopping.result(stopping.background(join, name="ray-join", wait_at_exit=False), timeout=limit)
    except TimeoutError:
        raise AgeGenderError(f"--ray-address {address}: something answers there, but no Ray cluster joined within "
                             f"{limit:g} s (ray_join_s; {raise_hint('ray_join_s')}); give the address `ray start "
                             f"--head` printed, and if the cluster uses token authentication, {TOKEN_HINT}") from None


def reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A one-line error, at once, where nothing accepts a connection at HOST:PORT (ray:// too): ray.init itself
    retries such an address without end. `auto` is left to Ray (it reads RAY_ADDRESS and its own records)."""
    if address == "auto":
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AgeGenderError(f"--ray-address {address}: not HOST:PORT, ray://HOST:PORT, auto or local")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = f"no answer in {timeout:g} s" if isinstance(exc, TimeoutError) else (exc.strerror or exc)
        raise AgeGenderError(f"--ray-address {address}: no Ray cluster answers there ({reason}); start one with "
                             "`ray start --head` and give the address it prints, or use --ray-address local"
                             ) from None


@dataclass(frozen=True)
class ActorShape:
    """How many model actors run, and what each one holds."""

    count: int
    gpus: int  # 1 where the cluster has GPUs, else 0
    cpus: float  # what each reserves
    per_node: int  # actors on a node at most: each runs its models on that node's CPUs / per_node threads


ACTOR_CPUS = 0.95  # reserved by a model actor: Ray places at most one per CPU of a node (up to 19 CPUs), spread
# over the nodes, and each leaves room for the driver's task below
DRIVER_TASK_CPUS = 0.01  # reserved by the task that runs the job's driver loop through Ray Client: next to nothing, so
# that it finds room on a cluster full of actors; it hands out lines and writes shards, and barely uses a core
ACTOR_MEMORY = 1 << 30  # both models in one actor (ONNX Runtime, fp32): about 0.7 GiB resident, rounded up


@dataclass(frozen=True)
class Node:
    """A live node with CPUs, as Ray reports it."""

    cpus: float
    memory: float  # bytes Ray may give to tasks and actors there (0: not reported)


def cpu_nodes(nodes: Sequence[Mapping]) -> list[Node]:
    """The live nodes that have CPUs (a head started with --num-cpus 0 only schedules)."""
    return [Node(float(n["Resources"]["CPU"]), float(n["Resources"].get("memory", 0))) for n in nodes
            if n.get("Alive", True) and n.get("Resources", {}).get("CPU", 0) >= 1]


def actor_shape(resources: Mapping[str, float], wanted: int, nodes: Sequence[Node] = (),
                reporter: Reporter = SILENT) -> ActorShape:
    """`wanted` model actors, or by default (0) one per CPU of each node, each running its models on one thread
    (measured on 2 cores: 5% more images/s than one actor on two threads, whose threads wait on each other), or
    one per GPU where the cluster has GPUs. Never more than the GPUs, nor than the nodes' CPUs (ACTOR_CPUS each)
    and memory (ACTOR_MEMORY each) hold, so that every actor starts."""
    gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 0))
    if cpus <= 0:
        raise AgeGenderError("the Ray cluster has no CPUs: add a node with CPUs (`ray start --address ... "
                             "--num-cpus N`)")
    nodes = list(nodes) or [Node(cpus, float(resources.get("memory", 0)))]
    by_memory = [int(n.memory // ACTOR_MEMORY) if n.memory else 1 << 30 for n in nodes]
    count = wanted or gpus or sum(max(1, min(int(n.cpus), m)) for n, m in zip(nodes, by_memory, strict=True))
    if gpus and count > gpus:
        if wanted:
            reporter.message(f"the cluster has {gpus} GPUs: {gpus} model actors instead of {count}")
        count = gpus
    room = {"CPUs": sum(int(n.cpus) for n in nodes),
            "GiB of memory": sum(by_memory)}
    for what, fits in room.items():
        if count > max(1, fits):
            held = cpus if what == "CPUs" else sum(n.memory for n in nodes) / (1 << 30)
            reporter.message(f"the cluster has {held:g} {what}: {max(1, fits)} model actors instead of {count}")
            count = max(1, fits)
    reserve = min(ACTOR_CPUS, max(n.cpus for n in nodes))  # a cluster of less than one CPU still runs one
    return ActorShape(count, 1 if gpus else 0, reserve, -(-count // len(nodes)))
