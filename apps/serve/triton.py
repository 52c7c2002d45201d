"""`cmlite triton export | serve`: past one device, a Triton Inference Server.

    cmlite triton export out/models/onnx-int8 out/models/openvino-int8 --out repo   # a model repository
    cmlite triton serve repo                                                         # tritonserver on it
    cmlite camera --model triton://127.0.0.1:8001/onnx-int8 --source clip.mp4        # any command, any client

`serve` runs NVIDIA's tritonserver (apps/serve/triton_server.py says where it comes from) on loopback by default. Off
loopback every endpoint but health needs the key in the `cmlite-key` header (Triton's restricted-protocol option):
given with --key or CMLITE_TRITON_KEY (then asked for on loopback too), else made here and printed in the URL.
Triton's metrics take no key, so they stay on loopback. Ctrl-C or SIGTERM stops the server cleanly (in-flight
requests get --exit-timeout seconds).
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.triton_backend import GRPC_KEY_HEADER, KEY_ENV, KEY_HEADER

from . import triton_server
from ..listen import is_loopback, parse_address

PROTOCOLS = "metadata,inference,shared-memory,model-config,model-repository,statistics,trace,logging"  # all but health


def add_parser(sub) -> None:
    p = sub.add_parser("triton", help="export converted models as a Triton model repository, and serve it",
                       description=__doc__.split("\n\n")[0])
    cmds = p.add_subparsers(dest="triton_command", required=True)
    e = cmds.add_parser("export", help="converted folders -> a Triton model repository (two models per folder)")
    e.add_argument("folders", nargs="+", metavar="MODEL_DIR", help="folders written by cmlite convert / quantize")
    e.add_argument("--out", required=True, help="the repository folder (created, or added to)")
    e.add_argument("--backend", choices=("native", "python"), default="native",
                   help="native: the server's own backend for the target (onnxruntime_onnx, openvino, tensorrt_plan: "
                        "NVIDIA's server images have them); python: cmlite's runtime inside Triton's Python backend "
                        "(any target, and the only kind the pip-installed server runs) (default native)")
    e.add_argument("--name", action="append", help="the model's name, one per folder (default: the folder's name)")
    e.add_argument("--instances", type=int, default=1,
                   help="model instances per graph (instance_group count; default 1)")
    e.add_argument("--threads", type=int, help="threads per instance (default: the runtime's own)")
    e.add_argument("--max-batch", type=int, help="graph 2's largest batch of RoIs (default: four frames' at "
                                                 "the model's detection cap, post_nms_topk)")
    e.add_argument("--overwrite", action="store_true", help="replace models of the same names in the repository "
                                                           "(the new ones are written first)")
    e.set_defaults(func=run_export)
    s = cmds.add_parser("serve", help="run tritonserver on a repository (loopback by default)")
    s.add_argument("repo", help="the model repository (cmlite triton export)")
    s.add_argument("--grpc", default="127.0.0.1:8001", help="gRPC HOST:PORT, what triton:// models use "
                                                            "(default 127.0.0.1:8001)")
    s.add_argument("--http", default="127.0.0.1:8000", help="HTTP HOST:PORT, or off (default 127.0.0.1:8000)")
    s.add_argument("--metrics", default="127.0.0.1:8002",
                   help="Prometheus metrics HOST:PORT on loopback, or off (they take no key) (default "
                        "127.0.0.1:8002)")
    s.add_argument("--key", help=f"the key clients must send (default: {KEY_ENV}; off loopback, else one made and "
                                 f"printed; on loopback, else none)")
    s.add_argument("--tritonserver", help="the tritonserver binary (default: PATH, else NVIDIA's pip wheel)")
    s.add_argument("--log", help="Triton's log file (default: a temporary file, named when the server starts)")
    s.add_argument("--exit-timeout", type=int, default=10,
                   help="seconds in-flight requests get when stopping (default 10)")
    s.add_argument("--start-timeout", type=float, default=300,
                   help="seconds to wait for every model to load (default 300)")
    s.set_defaults(func=run_serve)


def run_export(args) -> int:
    from cmlite.converters.triton_repo import export, needed_libraries, repo_models

    from ..table import plural

    names = export(args.folders, args.out, args.backend, args.name, args.instances, args.threads, args.max_batch,
                   args.overwrite)
    held = repo_models(Path(args.out))
    print(f"{args.out}: {plural(len(names), 'model')} written ({', '.join(names)})"
          + (f"; it holds {len(held)} ({', '.join(held)})" if len(held) != len(names) else ""))
    source, have = triton_server.would_serve()
    lacking = triton_server.missing_libraries(needed_libraries(Path(args.out)), have, source)
    if lacking:  # the server serve would find cannot load them: no promise it cannot keep
        print(f"not servable by {source} as it is: {lacking}")
    else:
        print(f"serve it with: cmlite triton serve {args.out}")
    return 0


def _address(text: str, flag: str, allow_off: bool = True) -> tuple[str, int] | None:
    if allow_off and text == "off":
        return None
    return parse_address(text, flag)


def check_key(key: str) -> str:
    if len(key) < 8 or not key.isprintable() or any(c in key for c in " ,:="):
        raise CmliteError("--key: give at least 8 printable characters without spaces, ',', ':' or '='")
    return key


def server_args(repo: Path, grpc, http, metrics, key: str | None, exit_timeout: int) -> list[str]:
    """tritonserver's options: every address explicit (its own default is 0.0.0.0), the key where asked."""
    out = [f"--model-repository={repo}", f"--grpc-address={grpc[0]}", f"--grpc-port={grpc[1]}",
           "--exit-on-error=true", "--strict-readiness=true", f"--exit-timeout-secs={exit_timeout}",
           "--log-verbose=0"]
    out += [f"--http-address={http[0]}", f"--http-port={http[1]}"] if http else ["--allow-http=false"]
    out += [f"--metrics-address={metrics[0]}", f"--metrics-port={metrics[1]}"] if metrics else \
        ["--allow-metrics=false"]
    if key:
        out.append(f"--grpc-restricted-protocol={PROTOCOLS}:{KEY_HEADER}={key}")
        if http:
            out.append(f"--http-restricted-api={PROTOCOLS}:{KEY_HEADER}={key}")
    return out


def run_serve(args) -> int:
    from cmlite.converters.triton_repo import repo_models

    repo = Path(args.repo)
    if not repo.is_dir() or not any(repo.glob("*/config.pbtxt")):
        raise CmliteError(f"{repo}: not a model repository (no MODEL/config.pbtxt); write one: cmlite triton export "
                          f"MODEL_DIR --out {repo}")
    names = repo_models(repo)
    grpc = _address(args.grpc, "--grpc", allow_off=False)
    http = _address(args.http, "--http")
    metrics = _address(args.metrics, "--metrics")
    if metrics and not is_loopback(metrics[0]):
        raise CmliteError(f"--metrics {args.metrics}: Triton's metrics take no key, so they stay on loopback (scrape "
                          f"them through a proxy that checks one), or --metrics off")
    public = [a for a in (grpc, http) if a and not is_loopback(a[0])]
    key = args.key or os.environ.get(KEY_ENV)  # a key given is asked for anywhere, loopback too
    if key:
        check_key(key)
    elif public:  # off loopback a key is required: one is made (loopback alone: only this machine reaches it)
        key = secrets.token_urlsafe(24)
    server = triton_server.find(args.tritonserver)
    from cmlite.converters.triton_repo import needed_libraries

    lacking = triton_server.missing_libraries(needed_libraries(repo), triton_server.libraries(server), server.source)
    if lacking:
        raise CmliteError(f"{repo} cannot be served here: {lacking}")
    if args.log:
        log_path = Path(args.log)
    else:
        fd, name = tempfile.mkstemp(prefix="cmlite-triton-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    cmd = [str(server.binary), f"--backend-directory={server.backends}",
           *server_args(repo.resolve(), grpc, http, metrics, key, args.exit_timeout)]
    verbose = bool(os.environ.get("CMLITE_VERBOSE"))
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=None if verbose else log_file, stderr=subprocess.STDOUT,
                                env=triton_server.environment(), preexec_fn=triton_server.die_with_parent)
    stop = _stop_on_signals(proc)
    try:
        _wait_ready(proc, grpc, key, log_path, args.start_timeout, len(names))
        host = socket.gethostname() if grpc[0] in ("0.0.0.0", "::") else grpc[0]
        query = f"?key={key}" if key else ""
        print(f"cmlite: Triton ({server.source}) serves {repo}: gRPC {grpc[0]}:{grpc[1]}"
              + (f", HTTP {http[0]}:{http[1]}" if http else "") + (f", metrics {metrics[0]}:{metrics[1]}" if metrics
                                                                    else "") + f"; its log: {log_path}")
        for name in names:
            print(f"  --model triton://{host}:{grpc[1]}/{name}{query}")
        if key:
            print(f"  clients off this machine send the key (?key=... in the URL, or {KEY_ENV})")
        print("Ctrl-C stops it.", flush=True)
        code = proc.wait()
        if not stop.asked:
            raise CmliteError(f"the Triton server stopped by itself (status {code}): {log_error(log_path)}")
        print("cmlite: Triton stopped", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(proc, args.exit_timeout)


class _Stop:
    asked = False


def _stop_on_signals(proc) -> _Stop:
    """SIGTERM and SIGINT end the server; the command then returns 0."""
    stop = _Stop()

    def handler(signum, frame):
        stop.asked = True
        proc.send_signal(signal.SIGTERM)

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, handler)
    return stop


def _stop(proc, exit_timeout: int) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(exit_timeout + 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_error(log_path: Path) -> str:
    """The line of Triton's log that says why, in cmlite's words where it is one cmlite knows."""
    import re

    text = log_path.read_text(errors="replace")
    found = sorted(set(re.findall(r"unable to find backend library for backend '([^']+)'", text)))
    if found:
        return (f"it has no {', '.join(found)} backend library: export those folders with --backend python, or "
                f"serve with --tritonserver pointing at a server that has it (NVIDIA's tritonserver image) "
                f"(the whole log: {log_path})")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("E") or "error" in ln.lower()]
    return (errors or lines or ["no output"])[-1][:400] + f" (the whole log: {log_path})"


def _wait_ready(proc, grpc, key, log_path: Path, timeout: float, models: int) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(f"{grpc[0]}:{grpc[1]}")
    headers = {GRPC_KEY_HEADER: key} if key else None
    t0 = time.monotonic()
    print(f"cmlite: starting Triton, loading {models} model{'s' if models != 1 else ''} (two graphs each)...",
          file=sys.stderr, flush=True)
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise CmliteError(f"the Triton server did not start: {log_error(log_path)}")
        try:
            if client.is_server_ready(headers=headers, client_timeout=2):
                return
        except InferenceServerException:
            pass
        time.sleep(0.5)
    raise CmliteError(f"the Triton server was not ready after {timeout:.0f} s (--start-timeout): "
                      f"{log_error(log_path)}")
