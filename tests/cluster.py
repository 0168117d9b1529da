"""Real Redis and a real two-node Ray cluster on free ports of 127.0.0.1, for the cluster tests and bench/.

redis-server comes from Debian's package, Ray from PyPI (requirements-cluster.txt). Every process started here
is stopped here: `ray start --block` keeps the node's processes under one parent, so terminating it stops
them (`ray stop` would stop every Ray process on the machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RAY_START_TIMEOUT = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, process: subprocess.Popen) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def _stop(process: subprocess.Popen) -> None:
    """Terminate a process and its children (a Ray node's raylet, GCS and workers)."""
    if process.poll() is not None:
        return
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


@dataclass
class Redis:
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        _stop(self.process)


def start_redis(folder: Path) -> Redis:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port, 20, process)
    return Redis(port, process)


@dataclass
class RayCluster:
    port: int
    nodes: list[subprocess.Popen]
    temp_dir: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        for node in reversed(self.nodes):
            _stop(node)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def ray_env() -> dict[str, str]:
    """Every node imports this checkout's normviz, as every node of deploy/ runs the same image."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}


def _ray(*args: str, log: Path) -> subprocess.Popen:
    ray = Path(sys.executable).with_name("ray")
    common = ["--num-cpus=1", "--object-store-memory=100000000", "--block"]
    return subprocess.Popen(
        [str(ray), "start", *args, *common], env=ray_env(), stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def start_ray(folder: Path, nodes: int = 2) -> RayCluster:
    """A head node and nodes-1 more, one CPU each; returns once the cluster offers `nodes` CPUs."""
    import ray

    port = free_port()
    log = folder / "ray.log"
    # Ray's unix sockets live under its temp dir, and a socket path may not exceed 107 bytes: pytest's own
    # temp folders (longer under pytest-xdist) leave too little room for Ray's session folder names.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    head = _ray(
        "--head",
        f"--port={port}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        log=log,
    )
    cluster = RayCluster(port, [head], temp_dir)
    try:
        _wait_port(port, RAY_START_TIMEOUT, head)
        cluster.nodes += [_ray(f"--address=127.0.0.1:{port}", log=log) for _ in range(nodes - 1)]
        with _driver(cluster.address):
            end = time.monotonic() + RAY_START_TIMEOUT
            while ray.cluster_resources().get("CPU", 0) < nodes:
                if time.monotonic() > end:
                    raise TimeoutError(f"the Ray cluster has not {nodes} CPUs after {RAY_START_TIMEOUT} s")
                time.sleep(0.2)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextmanager
def _driver(address: str):
    import ray

    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()


def ray_workers(key: str) -> list[psutil.Process]:
    """The Ray worker processes training the run of this Spec key now (Ray titles them by task name)."""
    from normviz.ray_pool import task_name

    title = f"ray::{task_name(key)}"
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if process.info["cmdline"] and process.info["cmdline"][0].strip() == title:
            found.append(process)
    return found
