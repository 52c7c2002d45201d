"""The camera app's web page (`cmlite camera --serve HOST:PORT`): watch a headless device from a browser.

    /             the page: the live picture and a live stats panel
    /stream.mjpg  multipart MJPEG of the overlaid frames (up to max_viewers at once; one leaving stops nothing)
    /stats.json   the current numbers (fps, latency, stages, backend, ...)
    /snapshot.jpg the latest frame

Standard library only (http.server, one thread per viewer). Frames are JPEG-encoded once per frame, and only
while someone watches the stream; a viewer gets the newest frame when it is ready for one, so a slow or stalled
viewer has frames dropped, never queued, and one that stalls or sends nothing for `IDLE_S` is dropped.

Strangers: a bare port binds 127.0.0.1 only. Any other address needs a token (`--token TEXT`, or one made and
printed with the URL, as Jupyter does; `--no-token` opts out, with a warning): every route answers 401 without
it and 403 with a wrong one. It is accepted as `?token=` (the page passes it on to its stream and stats) or as
an `Authorization: Bearer` / `X-Cmlite-Token` header, compared in constant time. Only the four routes exist:
anything else, encoded or climbing paths included, is a 404, and a URL over MAX_URL characters a 414.
"""
from __future__ import annotations

import hmac
import json
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import cv2
import numpy as np

from cmlite.runtimes.errors import CmliteError

from ..listen import WILDCARDS, bind_error, is_loopback, parse_address
from ..table import plural

BOUNDARY = "cmliteframe"
JPEG_QUALITY = 80
MAX_VIEWERS = 8
MAX_URL = 2048
IDLE_S = 10.0  # a client that sends nothing, or stops reading the stream, this long is dropped
ROUTES = ("/", "/index.html", "/stream.mjpg", "/stats.json", "/snapshot.jpg")
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cmlite camera</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { margin: 0; background: #111; color: #ddd; font: 14px system-ui, sans-serif; display: flex; flex-wrap: wrap; }
 #view { flex: 1 1 480px; padding: 8px; min-width: 0; }
 #view img { width: 100%; height: auto; max-height: calc(100vh - 16px); object-fit: contain; display: block;
   background: #000; }
 #stats { flex: 0 0 300px; padding: 8px 16px; } h1 { font-size: 18px; margin: 4px 0 12px; }
 .fps { font-size: 40px; color: #6f6; } table { border-collapse: collapse; width: 100%; }
 td { padding: 2px 4px; border-bottom: 1px solid #333; } td.v { text-align: right; font-variant-numeric: tabular-nums; }
 #status { color: #f66; min-height: 1.2em; }
</style></head>
<body>
<div id="view"><img id="live" alt="live picture"></div>
<div id="stats"><h1>cmlite camera</h1>
<div><span class="fps" id="fps">-</span> fps</div><div id="status"></div>
<table id="table"></table></div>
<script>
const rows = [["fps (mean)", s => s.fps_mean], ["latency ms", s => s.latency_ms], ["frames", s => s.frames],
  ["dropped", s => s.dropped], ["preprocess ms", s => s.stages_ms.preprocess], ["graph 1 ms", s => s.stages_ms.graph1],
  ["host ms", s => s.stages_ms.host], ["graph 2 ms", s => s.stages_ms.graph2], ["paste ms", s => s.stages_ms.paste],
  ["draw ms", s => s.stages_ms.draw], ["backend", s => s.backend], ["precision", s => s.precision],
  ["input", s => s.input], ["threads", s => s.threads], ["mode", s => s.running],
  ["MaskIoU", s => s.maskiou ? "on" : "off"],
  ["device", s => s.device], ["CPU", s => s.cpu], ["source", s => s.source], ["viewers", s => s.viewers]];
function show(s) {
  document.getElementById("fps").textContent = s.fps == null ? "-" : s.fps.toFixed(1);
  document.getElementById("status").textContent = s.status || "";
  document.getElementById("table").innerHTML = rows.map(([k, f]) => {
    let v = f(s); if (typeof v === "number") v = Number.isInteger(v) ? v : v.toFixed(1);
    return `<tr><td>${k}</td><td class="v">${v == null ? "-" : v}</td></tr>`; }).join("");
}
const q = location.search;  // ?token=... when the app asks for one: passed on to the stream and the stats
document.getElementById("live").src = "/stream.mjpg" + q;
async function poll() {
  try { show(await (await fetch("/stats.json" + q, {cache: "no-store"})).json()); }
  catch (e) { document.getElementById("status").textContent = "the app is not answering"; }
  setTimeout(poll, 500);
}
poll();
</script></body></html>
"""

TILED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cmlite camera: __STREAMS__ streams</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { margin: 0; background: #111; color: #ddd; font: 14px system-ui, sans-serif; }
 header { padding: 8px 12px; } h1 { font-size: 18px; margin: 0; display: inline; } #total { color: #6f6; }
 #grid { display: grid; gap: 6px; padding: 6px; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); }
 figure { margin: 0; background: #000; } figure img { width: 100%; height: auto; display: block; }
 figcaption { padding: 3px 6px; font-variant-numeric: tabular-nums; } .lost { color: #f66; }
</style></head>
<body><header><h1>cmlite camera</h1> <span id="total"></span> <span id="model"></span></header>
<div id="grid"></div>
<script>
const n = __STREAMS__, q = location.search;  // ?token=... passed on to every stream and the stats
const grid = document.getElementById("grid");
for (let i = 0; i < n; i++) {
  grid.insertAdjacentHTML("beforeend", `<figure><img id="s${i}" alt="stream ${i}"><figcaption id="c${i}">` +
    `stream ${i}</figcaption></figure>`);
  document.getElementById("s" + i).src = `/stream/${i}.mjpg` + q;
}
const f = v => v == null ? "-" : v.toFixed(1);
async function poll() {
  try {
    const s = await (await fetch("/stats.json" + q, {cache: "no-store"})).json();
    document.getElementById("total").textContent = `${f(s.fps_total)} fps in total`;
    document.getElementById("model").textContent = `${s.backend} ${s.precision}, ${s.running}`;
    s.streams.forEach((t, i) => { const c = document.getElementById("c" + i);
      c.textContent = `stream ${i}: ${f(t.fps)} fps, latency ${f(t.latency_ms)} ms, dropped ${t.dropped}` +
        ` - ${t.source}` + (t.status ? ` - ${t.status}` : ""); c.className = t.status ? "lost" : ""; });
  } catch (e) { document.getElementById("total").textContent = "the app is not answering"; }
  setTimeout(poll, 500);
}
poll();
</script></body></html>
"""


class FrameBroadcaster:
    """The latest overlaid frame, for any number of viewers."""

    def __init__(self):
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._jpeg: bytes | None = None
        self.seq = 0
        self.viewers = 0
        self.closed = False

    def publish(self, image: np.ndarray) -> None:
        jpeg = self._encode(image) if self.viewers else None
        with self._cond:
            self._image, self._jpeg = image, jpeg
            self.seq += 1
            self._cond.notify_all()

    @staticmethod
    def _encode(image: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        return buf.tobytes() if ok else b""

    def latest_jpeg(self) -> bytes | None:
        with self._cond:
            if self._jpeg is None and self._image is not None:
                self._jpeg = self._encode(self._image)
            return self._jpeg

    def wait_newer(self, seq: int, timeout: float) -> tuple[int, bytes | None]:
        with self._cond:
            self._cond.wait_for(lambda: self.seq != seq or self.closed, timeout)
            if self._jpeg is None and self._image is not None:
                self._jpeg = self._encode(self._image)
            return self.seq, self._jpeg

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class _Handler(BaseHTTPRequestHandler):
    server: "StatsServer"
    protocol_version = "HTTP/1.1"
    # per socket operation (setup): a client that sends nothing, or a viewer that stops reading, is dropped

    def setup(self):
        self.timeout = self.server.idle_s
        super().setup()

    def log_message(self, format, *args):  # no access log on the console
        pass

    def _send(self, body: bytes, content_type: str, status: int = 200, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**HEADERS, **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (414, 400, ...) with the same headers and no HTML echoing the request."""
        self.close_connection = True
        try:
            self._send(f"{code} {message or ''}".encode(), "text/plain", code, {"Connection": "close"})
        except OSError:
            pass

    def _authorized(self, query: str) -> int | None:
        """None when the request may go on; else the status to answer (401: no token, 403: a wrong one)."""
        want = self.server.token
        if want is None:
            return None
        auth = self.headers.get("Authorization", "")
        given = (parse_qs(query).get("token") or [None])[0] or self.headers.get("X-Cmlite-Token") or \
            (auth[7:] if auth.lower().startswith("bearer ") else None)
        if not given:
            return 401
        return None if hmac.compare_digest(given.encode(), want.encode()) else 403

    def do_GET(self):
        if len(self.path) > MAX_URL:
            return self.send_error(414, "URI too long")
        path, _, query = self.path.partition("?")
        try:
            if path not in self.server.routes:  # exact: no decoding, no normalising, so nothing else can be reached
                return self._send(b"not found: try /, /stream.mjpg, /stats.json or /snapshot.jpg (several streams: "
                                  b"/stream/I.mjpg, /snapshot/I.jpg)", "text/plain", 404)
            refused = self._authorized(query)
            if refused:
                return self._send(b"a token is needed: open the URL the app printed (with ?token=...)" if refused == 401
                                  else b"wrong token", "text/plain", refused,
                                  {"WWW-Authenticate": 'Bearer realm="cmlite"'} if refused == 401 else None)
            stream = self.server.route_stream(path)
            if path in ("/", "/index.html"):
                self._send(self.server.page().encode(), "text/html; charset=utf-8")
            elif path == "/stats.json":
                self._send(json.dumps({**self.server.stats(), "viewers": self.server.viewers}).encode(),
                           "application/json")
            elif path.startswith("/snapshot"):
                jpeg = stream.latest_jpeg()
                self._send(jpeg, "image/jpeg") if jpeg else self._send(b"no frame yet", "text/plain", 503)
            else:
                self._stream(stream)
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            self.close_connection = True  # the viewer left or stalled past IDLE_S

    def do_HEAD(self):
        self.do_GET()

    def _stream(self, frames: "FrameBroadcaster") -> None:
        with frames._cond:
            full = frames.viewers >= self.server.max_viewers
            if not full:
                frames.viewers += 1
        if full:
            n = self.server.max_viewers
            busy = f"{plural(n, 'viewer')} already {'watches' if n == 1 else 'watch'}: try later"
            return self._send(busy.encode(), "text/plain", 503, {"Retry-After": "10"})
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            for k, v in HEADERS.items():
                self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            seq = -1
            while not frames.closed:
                seq, jpeg = frames.wait_newer(seq, timeout=1.0)
                if not jpeg:
                    continue
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
                self.wfile.flush()
        finally:
            with frames._cond:
                frames.viewers -= 1


class StatsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], stats, token: str | None = None, max_viewers: int = MAX_VIEWERS,
                 idle_s: float = IDLE_S):
        super().__init__(address, _Handler)
        self.frames = FrameBroadcaster()  # stream 0 (the one stream of a one-source run)
        self.streams = [self.frames]
        self.routes = ROUTES
        self.stats = stats  # () -> dict for /stats.json
        self.token, self.max_viewers, self.idle_s = token, max_viewers, idle_s
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="web",
                                        daemon=True)

    def add_streams(self, n: int) -> None:
        """n streams in all: /stream/I.mjpg and /snapshot/I.jpg each (I from 0), the page tiles them; /stream.mjpg
        and /snapshot.jpg stay stream 0's."""
        self.streams = [self.frames] + [FrameBroadcaster() for _ in range(n - 1)]
        self.routes = ROUTES + tuple(r for i in range(n) for r in (f"/stream/{i}.mjpg", f"/snapshot/{i}.jpg"))

    def route_stream(self, path: str) -> "FrameBroadcaster":
        """The stream a route shows (stream 0 for the one-stream routes)."""
        if path.startswith(("/stream/", "/snapshot/")):
            return self.streams[int(path.rsplit("/", 1)[1].split(".")[0])]
        return self.frames

    @property
    def viewers(self) -> int:
        return sum(f.viewers for f in self.streams)

    def page(self) -> str:
        return PAGE if len(self.streams) == 1 else TILED_PAGE.replace("__STREAMS__", str(len(self.streams)))

    def handle_error(self, request, client_address):
        """A client that vanished mid-request is no error of the app's (socketserver would print a traceback)."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        """The page's URL, with the token when there is one."""
        return self.link("/")

    def link(self, route: str) -> str:
        """A URL a browser can open: bound to every address (0.0.0.0, ::), the machine's own name stands in for
        the wildcard, which no other machine can reach."""
        host, port = self.server_address[:2]
        if host in WILDCARDS:
            host = socket.gethostname() or "localhost"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}{route}" + (f"?token={self.token}" if self.token else "")

    def start(self) -> "StatsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        for frames in self.streams:
            frames.close()
        self.shutdown()
        self.server_close()


def check_options(token: str | None, max_viewers: int) -> None:
    if token is not None and (len(token) < 8 or not token.isprintable() or " " in token):
        raise CmliteError("--token: give at least 8 printable characters without spaces (or leave it out: one is "
                          "made and printed)")
    if max_viewers < 1:
        raise CmliteError(f"--max-viewers {max_viewers}: give at least 1")


def serve(address: str, stats, token: str | None = None, no_token: bool = False, max_viewers: int = MAX_VIEWERS,
          log=lambda m: None, idle_s: float = IDLE_S) -> StatsServer:
    """Serve on `address`; off loopback a token is required (given, or made here), unless no_token."""
    host, port = parse_address(address)
    check_options(token, max_viewers)
    if token is None and not no_token and not is_loopback(host):
        token = secrets.token_urlsafe(24)
    if no_token and not is_loopback(host):
        log(f"cmlite: warning: serving {host}:{port} without a token (--no-token): anyone who can reach this "
            f"machine sees the camera and its numbers")
    try:
        return StatsServer((host, port), stats, None if no_token else token, max_viewers, idle_s).start()
    except OSError as e:
        raise bind_error(host, port, e) from None
