"""The camera app's web server (apps/camera/web.py) against strangers: loopback by default, a token anywhere else, a cap
on viewers, fixed routes only, and viewers that stall or say nothing dropped without slowing the app. Real HTTP
over real sockets; the frames are the moving scene's."""
from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from cmlite.apps.camera.web import serve
from cmlite.calibration.synth_scene import MovingScene
from cmlite.runtimes.errors import CmliteError

ROUTES = ("/", "/stream.mjpg", "/stats.json", "/snapshot.jpg")


@pytest.fixture
def publishing():
    """Start a server (serve's arguments) with a thread publishing 640x480 frames at ~30 fps; stop both after."""
    started = []
    scene = MovingScene(640, 480, seed=1)
    frames = [scene.render(i / 10) for i in range(8)]

    def start(address, **kw):
        logs = []
        server = serve(address, lambda: {"frames": 1}, log=logs.append, **kw)
        stop = threading.Event()
        gaps = []

        def loop():
            i = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                server.frames.publish(frames[i % len(frames)])
                gaps.append(time.perf_counter() - t0)
                i += 1
                stop.wait(1 / 30)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        started.append((server, stop, thread))
        while not gaps:
            time.sleep(0.01)
        return server, logs, gaps

    yield start
    for server, stop, thread in started:
        stop.set()
        thread.join(5)
        server.stop()


class _Held:
    """An open stream: closing it closes the socket (the response holds it too)."""

    def __init__(self, conn, r):
        self.conn, self.r = conn, r

    def close(self):
        self.r.close()
        self.conn.close()


def _get(port: int, path: str, headers=None, host="127.0.0.1", read=True):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read() if read else b""
    return r, body, _Held(conn, r)


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only the route's source address is chosen
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def test_a_bare_port_binds_loopback_only(publishing):
    server, _, _ = publishing("0")
    host, port = server.server_address[:2]
    assert host == "127.0.0.1" and server.token is None and server.url == f"http://127.0.0.1:{port}/"
    assert _get(port, "/stats.json")[0].status == 200
    ip = _non_loopback_address()
    if ip is None:
        pytest.skip("this machine has no address but loopback")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, port), timeout=5).close()


def test_off_loopback_every_route_needs_the_token(publishing):
    server, logs, _ = publishing("0.0.0.0:0")
    port, token = server.server_address[1], server.token
    assert token and len(token) >= 24 and server.url.endswith(f"/?token={token}")  # made and printed, as Jupyter
    # a URL another machine can open: the machine's name, not the wildcard it is bound to
    assert server.url == f"http://{socket.gethostname()}:{port}/?token={token}" and "0.0.0.0" not in server.url
    for route in ROUTES:
        r, _, conn = _get(port, route)
        assert r.status == 401 and r.getheader("WWW-Authenticate"), route
        r, _, conn = _get(port, route + "?token=" + "x" * len(token))
        assert r.status == 403, route
        for path, headers in ((f"{route}?token={token}", {}), (route, {"Authorization": f"Bearer {token}"}),
                              (route, {"X-Cmlite-Token": token})):
            r, body, conn = _get(port, path, headers, read=route != "/stream.mjpg")
            assert r.status == 200, (path, headers)
            if route == "/stream.mjpg":
                assert r.read(200).startswith(b"--cmliteframe")
            conn.close()
    page = _get(port, f"/?token={token}")[1].decode()
    assert "location.search" in page  # the page passes ?token= on to its stream and stats


def test_no_token_is_a_choice_with_a_warning(publishing):
    server, logs, _ = publishing("0.0.0.0:0", no_token=True)
    assert server.token is None and any("without a token" in m and "anyone" in m for m in logs)
    assert _get(server.server_address[1], "/stats.json")[0].status == 200


def test_a_token_on_loopback_is_asked_for_too(publishing):
    server, _, _ = publishing("127.0.0.1:0", token="a-long-secret")
    port = server.server_address[1]
    assert _get(port, "/")[0].status == 401 and _get(port, "/?token=a-long-secret")[0].status == 200


def test_more_viewers_than_allowed_get_a_503(publishing):
    server, _, _ = publishing("0", max_viewers=2)
    port = server.server_address[1]
    held = [_get(port, "/stream.mjpg", read=False) for _ in range(2)]
    for r, _, _ in held:
        assert r.status == 200 and r.read(100).startswith(b"--cmliteframe")
    r, body, _ = _get(port, "/stream.mjpg")
    assert r.status == 503 and b"2 viewers already watch" in body
    held[0][2].close()
    deadline = time.monotonic() + 10
    while server.frames.viewers > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    r, _, conn = _get(port, "/stream.mjpg", read=False)  # a place freed: the next one is let in
    assert r.status == 200
    conn.close()


@pytest.mark.parametrize("path", ["/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/stats.json/../x", "/index.html/",
                                  "/stream.mjpg%00", "/README.md", "/apps/camera/web.py", "/%73tats.json"])
def test_only_the_routes_exist(publishing, path):
    server, _, _ = publishing("0")
    r, _, _ = _get(server.server_address[1], path)
    assert r.status == 404 and r.getheader("Cache-Control") == "no-store"
    assert r.getheader("X-Content-Type-Options") == "nosniff"


def test_long_urls_get_414_and_every_answer_its_headers(publishing):
    server, _, _ = publishing("0")
    port = server.server_address[1]
    r, _, _ = _get(port, "/stats.json?" + "a" * 3000)
    assert r.status == 414
    for route in ("/", "/stats.json", "/snapshot.jpg"):
        r, _, _ = _get(port, route)
        assert (r.status, r.getheader("Cache-Control"), r.getheader("X-Content-Type-Options")) == \
            (200, "no-store", "nosniff")


def test_silent_and_stalled_viewers_are_dropped_and_slow_nothing(publishing):
    """A client that connects and sends nothing, and a viewer that stops reading the stream, are dropped after the
    idle timeout; meanwhile another viewer keeps getting frames and publishing a frame stays as quick."""
    server, _, gaps = publishing("0", idle_s=1.0)
    port = server.server_address[1]
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)
    stalled = socket.create_connection(("127.0.0.1", port), timeout=10)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
    r, _, watching = _get(port, "/stream.mjpg", read=False)
    n_before = len(gaps)
    got = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4:
        got += r.read(20000)
    assert got.count(b"--cmliteframe") > 20  # the other viewer kept getting frames (about 30 a second)
    assert silent.recv(100) == b""  # closed by the server: it sent nothing for longer than the timeout
    deadline = time.monotonic() + 10
    while server.frames.viewers > 1 and time.monotonic() < deadline:  # the stalled one is gone too
        time.sleep(0.05)
    assert server.frames.viewers == 1
    publish = sorted(gaps[n_before:])
    assert publish[len(publish) // 2] < 0.05  # publishing a frame waits for no viewer
    for s in (silent, stalled, watching):
        s.close()


@pytest.mark.parametrize("address,says", [
    ("999.1.1.1:8099", "999.1.1.1 is not an address of this machine"),
    ("192.0.2.1:8099", "192.0.2.1 is not an address of this machine"),  # TEST-NET-1: nobody's address, never sent to
])
def test_a_wrong_host_is_named_not_the_port(address, says):
    """Before: `--serve 999.1.1.1:P` said "is the port in use?" (the host was wrong)."""
    with pytest.raises(CmliteError, match=says) as e:
        serve(address, lambda: {})
    assert "port is in use" not in str(e.value)


def test_a_port_in_use_is_named(publishing):
    server, _, _ = publishing("0")
    port = server.server_address[1]
    with pytest.raises(CmliteError, match="the port is in use"):
        serve(f"127.0.0.1:{port}", lambda: {})


def test_one_viewer_allowed_is_said_in_the_singular(publishing):
    """Before: "1 viewers already watch"."""
    server, _, _ = publishing("0", max_viewers=1)
    port = server.server_address[1]
    first, _, conn = _get(port, "/stream.mjpg", read=False)
    assert first.status == 200 and first.read(100).startswith(b"--cmliteframe")
    r, body, _ = _get(port, "/stream.mjpg")
    conn.close()
    assert r.status == 503 and b"1 viewer already watches" in body
