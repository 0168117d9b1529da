"""The course deployment (deploy/): the compose file and the Dockerfile agree with the repo, and the real
deploy/nginx.conf, run by nginx in front of stand-in replicas and a real `streamlit run`, keeps each browser on
one replica, spreads new browsers (all from one IP, like a class behind a NAT) over both, and passes Streamlit's
websocket. nginx comes from Debian's package, installed by the README's test command."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.cookiejar
import http.server
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SERVICES = {"redis", "ray-head", "ray-worker", "app1", "app2", "proxy"}
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import e2e_helpers as h  # noqa: E402  (start_server, stop_server, free_port)


def _missing(what: str) -> None:
    pytest.fail(f"{what} is missing: the README's test command installs it")


# --- compose.yaml and the Dockerfile --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    try:
        import yaml
    except ImportError:
        _missing("PyYAML (pip install -r requirements-cluster.txt brings it with ray)")
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(e.split("=", 1) for e in env) if isinstance(env, list) else env


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_compose_has_the_six_services_and_the_replicas_use_ray_and_redis(compose):
    services = compose["services"]
    assert set(services) == SERVICES
    for name in ("app1", "app2"):
        env = _env(services[name])
        assert env["NORMVIZ_RAY_ADDRESS"] == "ray-head:6379", name
        assert env["NORMVIZ_REDIS_URL"] == "redis://redis:6379/0", name
        assert "NORMVIZ_PUBLIC_URL" in env, name
    assert "--head" in services["ray-head"]["command"] and "--port=6379" in services["ray-head"]["command"]
    assert "--address=ray-head:6379" in services["ray-worker"]["command"]
    for name in ("ray-head", "ray-worker", "app1", "app2"):  # every Ray node (the replicas are 0-CPU nodes)
        assert services[name].get("shm_size"), f"{name}: Ray's object store wants a larger /dev/shm"


def test_compose_builds_the_dockerfile_and_mounts_the_nginx_conf_it_proxies_to(compose):
    services = compose["services"]
    build = services["app1"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    proxy = services["proxy"]
    assert "8080:8080" in proxy["ports"]
    mounts = {target: source for source, target, *_ in (v.split(":") for v in proxy["volumes"])}
    assert (DEPLOY / mounts["/etc/nginx/nginx.conf"]).resolve() == (DEPLOY / "nginx.conf").resolve()
    conf = (DEPLOY / "nginx.conf").read_text()
    assert re.search(r"listen 8080;", conf)
    for host, port in re.findall(r"^\s*server (\S+):(\d+);", conf, re.M):
        assert host in services and port == "8501", f"nginx proxies to {host}:{port}"


def test_dockerfile_copies_files_that_exist_and_installs_the_cluster_requirements():
    steps = _dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    copied = []
    for instruction, args in steps:
        if instruction == "COPY":
            *sources, _dest = [a for a in shlex.split(args) if not a.startswith("--")]
            copied += sources
    for source in copied:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repo"
    assert {"app.py", "normviz/", "pages/", "requirements-cluster.txt"} <= set(copied)
    runs = " ".join(args for instruction, args in steps if instruction == "RUN")
    assert re.search(r"pip install [^&]*-r requirements-cluster\.txt", runs)
    # the CPU wheel installed first must be the version requirements.txt pins, or pip replaces it with CUDA's
    pin = re.search(r"^torch==\S+", (ROOT / "requirements.txt").read_text(), re.M).group()
    assert re.search(rf"--index-url https://download\.pytorch\.org/whl/cpu {re.escape(pin)}\b", runs)
    assert ("ENV", "PYTHONPATH=/app") in steps and ("WORKDIR", "/app") in steps
    cmd = next(args for instruction, args in steps if instruction == "CMD")
    assert "streamlit run app.py --server.port 8501 --server.address 0.0.0.0 --server.headless true" in cmd
    # ray.init(address=...) needs a raylet on its own host: a replica joins as a node that runs no tasks
    shell = json.loads(cmd)[2]
    assert 'then ray start --address="$NORMVIZ_RAY_ADDRESS" --num-cpus=0' in shell


def test_cluster_requirements_add_ray_and_redis_to_the_app_requirements():
    lines = (ROOT / "requirements-cluster.txt").read_text().split()
    assert lines[0] == "-r" and lines[1] == "requirements.txt"
    assert any(line.startswith("ray==") for line in lines) and any(line.startswith("redis==") for line in lines)


# --- the real nginx.conf under nginx ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nginx() -> str:
    exe = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if exe is None:
        _missing("nginx")
    return exe


@contextlib.contextmanager
def running_nginx(exe: str, tmp: Path, upstream_ports: tuple[int, int]):
    """deploy/nginx.conf with only its upstreams and listen port replaced, under nginx; yields the base URL."""
    port = h.free_port()
    conf = (DEPLOY / "nginx.conf").read_text()
    for old, new in [
        ("server app1:8501;", f"server 127.0.0.1:{upstream_ports[0]};"),
        ("server app2:8501;", f"server 127.0.0.1:{upstream_ports[1]};"),
        ("listen 8080;", f"listen 127.0.0.1:{port};"),
    ]:
        assert conf.count(old) == 1, f"deploy/nginx.conf should say {old!r} once"
        conf = conf.replace(old, new)
    (tmp / "nginx.conf").write_text(conf)
    # -e: the error log before the config is read; the config logs errors to stderr and requests to stdout
    conf_args = ["-c", str(tmp / "nginx.conf"), "-g", f"daemon off; pid {tmp}/nginx.pid;"]
    cmd = [exe, "-p", str(tmp), "-e", "stderr", *conf_args]
    with open(tmp / "access.log", "ab") as out, open(tmp / "error.log", "ab") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, f"nginx exited with {proc.returncode}:\n{(tmp / 'error.log').read_text()}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, f"nginx did not listen:\n{(tmp / 'error.log').read_text()}"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the master and its workers
            proc.wait(5)


class _Replica(http.server.BaseHTTPRequestHandler):
    """A stand-in replica: answers every request with its server's name."""

    def do_GET(self):
        self._answer()

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer()

    def _answer(self):
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def standin_proxy(nginx, tmp_path_factory):
    """nginx in front of two stand-in replicas that answer "app1" and "app2"; the proxy's base URL."""
    servers = []
    try:
        for name in ("app1", "app2"):
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Replica)
            server.name = name
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
        ports = tuple(s.server_address[1] for s in servers)
        with running_nginx(nginx, tmp_path_factory.mktemp("nginx-standins"), ports) as base:
            yield base
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _browser() -> urllib.request.OpenerDirector:
    """A fresh browser: its own cookie jar, a new connection per request."""
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _jar(browser) -> http.cookiejar.CookieJar:
    return next(hd.cookiejar for hd in browser.handlers if isinstance(hd, urllib.request.HTTPCookieProcessor))


def _replica(browser, url: str, data: bytes | None = None) -> str:
    with browser.open(url, data=data, timeout=10) as response:
        return response.read().decode()


def test_a_browser_stays_on_one_replica_page_upload_and_websocket_path_alike(standin_proxy):
    browser = _browser()
    paths = ["/", "/activations?seed=3", "/_stcore/health", "/_stcore/stream", "/_stcore/upload_file/s/f"] * 4
    seen = [_replica(browser, standin_proxy + path) for path in paths]
    assert len(seen) == 20 and len(set(seen)) == 1, seen
    assert [c.name for c in _jar(browser)] == ["normviz_replica"]
    # an upload of 5 MB (nginx's default limit is 1 MB) reaches the same replica
    assert _replica(browser, standin_proxy + "/_stcore/upload_file/s/f", b"x" * 5_000_000) == seen[0]


def test_new_browsers_from_one_ip_are_spread_over_both_replicas(standin_proxy):
    browsers = [_browser() for _ in range(40)]
    seen = [_replica(b, standin_proxy + "/") for b in browsers]
    assert set(seen) == {"app1", "app2"}, f"40 new browsers, all from 127.0.0.1, reached only {set(seen)}"
    cookies = {c.value for b in browsers for c in _jar(b) if c.name == "normviz_replica"}
    assert len(cookies) == 40  # each browser its own value


def test_streamlit_metrics_are_not_served(standin_proxy):
    with pytest.raises(urllib.error.HTTPError) as err:
        _replica(_browser(), standin_proxy + "/_stcore/metrics")
    assert err.value.code == 404


# --- a real Streamlit behind it -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def streamlit_proxy(nginx, tmp_path_factory):
    """nginx in front of one real `streamlit run app.py` (in both upstream slots); the proxy's base URL."""
    tmp = tmp_path_factory.mktemp("nginx-streamlit")
    server = h.start_server(tmp / "streamlit.log", env={"NORMVIZ_WORKERS": "0", "NORMVIZ_CACHE_DIR": "off"})
    try:
        port = int(server.base.rsplit(":", 1)[1])
        with running_nginx(nginx, tmp, (port, port)) as base:
            yield base
    finally:
        h.stop_server(server)


def _ws_handshake(base: str, host: str, origin: str) -> tuple[str, dict[str, str], socket.socket]:
    """A websocket handshake to /_stcore/stream with these Host and Origin headers: status line, response
    headers (lower-case names), and the open socket."""
    port = int(base.rsplit(":", 1)[1])
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /_stcore/stream HTTP/1.1\r\n"
        f"Host: {host}\r\nOrigin: {origin}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"the proxy closed the connection after {data!r}"
        data += chunk
    status, *lines = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    if status.split()[1] == "101":
        assert headers["sec-websocket-accept"] == accept.decode()  # Streamlit's own answer to our key
    return status, headers, sock


def test_streamlit_health_answers_through_the_proxy(streamlit_proxy):
    assert _replica(_browser(), streamlit_proxy + "/_stcore/health") == "ok"


def test_streamlit_websocket_passes_through_and_answers_a_ping(streamlit_proxy):
    # a class's host name with the proxy's port: with `Host $host` nginx would drop the port and Streamlit
    # would refuse the Origin (403)
    port = streamlit_proxy.rsplit(":", 1)[1]
    status, headers, sock = _ws_handshake(
        streamlit_proxy, f"class.example.org:{port}", f"http://class.example.org:{port}"
    )
    with sock:
        assert status == "HTTP/1.1 101 Switching Protocols", (status, headers)
        assert headers["set-cookie"].startswith("normviz_replica=")
        mask, payload = os.urandom(4), b"normviz"
        sock.sendall(bytes([0x89, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        frames = b""
        deadline = time.monotonic() + 10
        while bytes([0x8A, len(payload)]) + payload not in frames:  # the pong, unmasked, from Streamlit
            assert time.monotonic() < deadline, f"no pong through the proxy: {frames!r}"
            chunk = sock.recv(4096)
            assert chunk, f"the proxy closed the websocket: {frames!r}"
            frames += chunk


def test_streamlit_still_refuses_a_foreign_origin_through_the_proxy(streamlit_proxy):
    port = streamlit_proxy.rsplit(":", 1)[1]
    status, _, sock = _ws_handshake(streamlit_proxy, f"class.example.org:{port}", "http://elsewhere.example")
    sock.close()
    assert status.split()[1] == "403", status
