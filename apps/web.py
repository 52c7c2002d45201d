"""The camera app's web page (`cmlite camera --serve HOST:PORT`): watch a headless device from a browser.

    /             the page: the live picture and a live stats panel
    /stream.mjpg  multipart MJPEG of the overlaid frames (any number of viewers; one leaving stops nothing)
    /stats.json   the current numbers (fps, latency, stages, backend, ...)
    /snapshot.jpg the latest frame

Standard library only (http.server, one thread per viewer). Frames are JPEG-encoded once per frame, and only
while someone watches the stream.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from runtimes.errors import CmliteError

BOUNDARY = "cmliteframe"
JPEG_QUALITY = 80

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
<div id="view"><img id="live" src="/stream.mjpg" alt="live picture"></div>
<div id="stats"><h1>cmlite camera</h1>
<div><span class="fps" id="fps">-</span> fps</div><div id="status"></div>
<table id="table"></table></div>
<script>
const rows = [["fps (now)", s => s.fps_now], ["latency ms", s => s.latency_ms], ["frames", s => s.frames],
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
async function poll() {
  try { show(await (await fetch("/stats.json", {cache: "no-store"})).json()); }
  catch (e) { document.getElementById("status").textContent = "the app is not answering"; }
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

    def log_message(self, format, *args):  # no access log on the console
        pass

    def _send(self, body: bytes, content_type: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                self._send(PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/stats.json":
                self._send(json.dumps({**self.server.stats(), "viewers": self.server.frames.viewers}).encode(),
                           "application/json")
            elif path == "/snapshot.jpg":
                jpeg = self.server.frames.latest_jpeg()
                self._send(jpeg, "image/jpeg") if jpeg else self._send(b"no frame yet", "text/plain", 503)
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._send(b"not found: try / , /stream.mjpg or /stats.json", "text/plain", 404)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the viewer left

    def _stream(self) -> None:
        frames = self.server.frames
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        with frames._cond:
            frames.viewers += 1
        try:
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

    def __init__(self, address: tuple[str, int], stats):
        super().__init__(address, _Handler)
        self.frames = FrameBroadcaster()
        self.stats = stats  # () -> dict for /stats.json
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="web",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "StatsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.frames.close()
        self.shutdown()
        self.server_close()


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT, :PORT or PORT (loopback unless a host is named); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CmliteError(f"--serve {text!r}: expected HOST:PORT or PORT, e.g. 8080 or 0.0.0.0:8080 (the port "
                          f"0-65535; 0 picks a free one)")
    return host, int(port)


def serve(address: str, stats) -> StatsServer:
    host, port = parse_address(address)
    try:
        return StatsServer((host, port), stats).start()
    except OSError as e:
        raise CmliteError(f"cannot serve on {host}:{port}: {e.strerror or e} (is the port in use? pick another "
                          f"with --serve {host}:PORT)") from None
