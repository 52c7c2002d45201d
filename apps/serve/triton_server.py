"""NVIDIA's `tritonserver` for `cmlite triton serve`: where it comes from, and running it on a repository.

The server is found, in order: `--tritonserver PATH`; `tritonserver` on PATH (NVIDIA's server images, with their
backends under /opt/tritonserver/backends); the `nvidia-pytriton` package if installed; else the server in that
package's wheel, fetched once by pip (pinned by version and sha256) into ~/.cache/cmlite (CMLITE_TRITON_HOME). The
wheel holds the server, its Python backend and the backend's stubs per CPython version, not the ONNX Runtime,
OpenVINO or TensorRT backends (those come with NVIDIA's images): on it, `cmlite triton export --backend python`
models run. Its Python package is not installed: it pins numpy<2, which would downgrade the whole stack.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cmlite.runtimes.errors import CmliteError

PYTRITON = "nvidia-pytriton==0.7.0"  # tritonserver 2.59 (x86_64, glibc >= 2.35)
PYTRITON_SHA256 = "21f063ff93bb426d0c06b7a55e7eb9efcfe62c0dddd9a908e9877e18710128df"
HOME_ENV = "CMLITE_TRITON_HOME"
WHEEL_PARTS = ("pytriton/tritonserver/", "nvidia_pytriton.libs/")


@dataclass(frozen=True)
class Server:
    binary: Path
    backends: Path
    source: str  # where it came from, in words


def home() -> Path:
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "cmlite" / PYTRITON.replace("==", "-"))


def find(explicit: str | None = None, fetch: bool = True, log=print) -> Server:
    if explicit:
        binary = Path(explicit)
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise CmliteError(f"--tritonserver {explicit}: not an executable file")
        return Server(binary, _backends_near(binary), str(binary))
    on_path = shutil.which("tritonserver")
    if on_path:
        return Server(Path(on_path), _backends_near(Path(on_path)), f"{on_path} (PATH)")
    root = _installed_pytriton() or home()
    if not (root / "pytriton/tritonserver/bin/tritonserver").is_file():
        if not fetch:
            raise CmliteError(f"no tritonserver: none on PATH and none in {root}; run `cmlite triton serve` once "
                              f"with network access, or install Triton and put tritonserver on PATH")
        _fetch(root, log)
    tree = root / "pytriton/tritonserver"
    _python_stub(tree)
    return Server(tree / "bin/tritonserver", tree / "backends", f"{PYTRITON} wheel, in {root}")


WHEEL_LIBRARIES = ("python",)  # the backends the pip wheel's server has (NVIDIA's images have the native ones too)


def libraries(server: Server) -> set[str]:
    """The backend libraries the server has (the folders of its backends/)."""
    d = server.backends
    return {p.name for p in d.iterdir() if p.is_dir()} if d.is_dir() else set()


def would_serve(explicit: str | None = None) -> tuple[str, set[str]]:
    """(the server `cmlite triton serve` would run, in words; its backend libraries), fetching nothing."""
    try:
        server = find(explicit, fetch=False)
    except CmliteError:
        return f"the {PYTRITON} wheel's server, fetched by the first serve", set(WHEEL_LIBRARIES)
    return server.source, libraries(server)


def missing_libraries(needed: dict[str, list[str]], have: set[str], source: str) -> str | None:
    """The one line saying which backends a repository needs that the server lacks, and the two ways out; None
    when it has them all."""
    missing = {lib: models for lib, models in needed.items() if lib not in have}
    if not missing:
        return None
    what = "; ".join(f"{lib} (for {', '.join(models)})" for lib, models in missing.items())
    return (f"{source} has no {what} backend (it has: {', '.join(sorted(have)) or 'none'}): export those folders "
            f"with --backend python (cmlite's runtime inside Triton's Python backend, which every server has), or "
            f"serve with --tritonserver pointing at a server that has them (NVIDIA's tritonserver image: "
            f"/opt/tritonserver/bin/tritonserver)")


def _backends_near(binary: Path) -> Path:
    for d in (binary.resolve().parent.parent / "backends", Path("/opt/tritonserver/backends")):
        if d.is_dir():
            return d
    return binary.resolve().parent.parent / "backends"


def _installed_pytriton() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).parent


def _fetch(root: Path, log) -> None:
    """pip downloads the pinned wheel (hash checked); its server tree is unpacked beside and renamed into place."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise CmliteError(f"the {PYTRITON} wheel's server is built for x86_64, not {platform.machine()}: install "
                          f"Triton for this machine (NVIDIA's server image, or JetPack's on a Jetson) and put "
                          f"tritonserver on PATH")
    root.parent.mkdir(parents=True, exist_ok=True)
    log(f"fetching NVIDIA's Triton server once ({PYTRITON}'s wheel, 55 MB, sha256 checked) into {root}")
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".fetch-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{PYTRITON} --hash=sha256:{PYTRITON_SHA256}\n")
        run = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                              "--disable-pip-version-check", "-r", str(req), "-d", tmp],
                             stdout=None if log is print else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if run.returncode:
            lines = [ln for ln in run.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
            raise CmliteError(f"could not fetch the Triton server (pip download {PYTRITON}: "
                              f"{lines[-1] if lines else run.returncode}); check the network, or install Triton and "
                              f"put tritonserver on PATH")
        [wheel] = Path(tmp).glob("*.whl")
        unpacked = Path(tmp) / "tree"
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                if info.filename.startswith(WHEEL_PARTS) and not info.is_dir():
                    path = Path(z.extract(info, unpacked))
                    path.chmod((info.external_attr >> 16) & 0o777 or 0o644)
        if root.exists():
            shutil.rmtree(root)
        unpacked.rename(root)


def _python_stub(tree: Path) -> None:
    """Triton's Python backend runs model.py in a stub built for one CPython version: the one for this Python goes
    beside libtriton_python.so (the same depth as in the wheel, so the stub finds the wheel's libraries)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = tree / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise CmliteError(f"the Triton server in {tree} has no Python backend stub for Python {version}; run cmlite "
                          f"with Python {', '.join(sorted(p.name for p in (tree / 'python_backend_stubs').iterdir()))}")
    dst = tree / "backends/python/triton_python_backend_stub"
    if not dst.is_file() or dst.read_bytes() != stub.read_bytes():
        tmp = dst.with_name(f".stub-{os.getpid()}")
        shutil.copy2(stub, tmp)
        tmp.replace(dst)


def environment() -> dict[str, str]:
    """The server's environment: the Python backend's models find cmlite through CMLITE_SITE (the stub ignores
    PYTHONPATH), and the stub embeds this Python's own libpython (LIBDIR first on the library path)."""
    from cmlite.converters.triton_repo import site_dirs

    env = dict(os.environ)
    env["CMLITE_SITE"] = site_dirs()
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and sysconfig.get_config_var("Py_ENABLE_SHARED"):
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH")) if p)
    return env


def die_with_parent() -> None:
    """In the child before exec: Linux ends the server when cmlite itself dies, even by SIGKILL."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
