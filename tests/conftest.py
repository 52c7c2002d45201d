"""Shared fixtures: the official reference outputs, and the reference model run once per session."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("CMLITE_REFERENCE", REPO.parent / "shared" / "reference"))
CKPT = REFERENCE / "centermask_lite_v19_ese_random.pth"
IMAGE = REFERENCE / "input_bgr_480x640.png"
NPZ = REFERENCE / "centermask_lite_v19_ese_reference.npz"

# cmlite's cache (auto's remembered modes) in a folder of this session's: tests and the commands they run neither
# read what the user's runs remembered nor leave anything in the user's cache
os.environ["CMLITE_CACHE"] = tempfile.mkdtemp(prefix="cmlite-test-cache-")


def rel_err(a, b) -> float:
    """Max abs difference relative to the reference magnitude (the reference README's tolerance measure)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of paired boxes."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(bool), b.astype(bool)
    inter = (a & b).sum(axis=(1, 2))
    union = (a | b).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


# The fast tier (`pytest -m "not slow"`, the edit-test loop) leaves out the tests that need these session or module
# fixtures (each converts or quantizes full-size models for a minute or more) and those marked slow themselves;
# tiny_models keeps every converter, quantizer and backend in it, at 128x160.
SLOW_FIXTURES = {"converted", "default_models", "quantized", "fp32", "int8", "bench_run", "trained"}


_DURATIONS: dict[str, float] = {}
_SLOW: set[str] = set()


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.path.name == ARM_TESTS)  # last: they wait for the check arm_check_job started
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow"):
            _SLOW.add(item.nodeid)


def pytest_runtest_logreport(report):
    """Each test's time, set-up (its share of session fixtures included) and tear-down too."""
    _DURATIONS[report.nodeid] = _DURATIONS.get(report.nodeid, 0.0) + report.duration


SUMMARIES: list[tuple[str, str]] = []  # (title, text) a test leaves for the end of the run (the ARM check's table)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """What tests left in SUMMARIES; then the 15 slowest tests, set-up included (a session fixture's cost goes to
    its first test), with their tier; with CMLITE_DURATIONS=FILE (as .ci/run sets it) every test's time is also
    written there, slowest first, so the suite's cost is kept beside the run."""
    for title, text in SUMMARIES:
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(text)
    if not _DURATIONS:
        return
    rows = sorted(_DURATIONS.items(), key=lambda kv: -kv[1])
    head = f"{len(_DURATIONS)} tests, {sum(_DURATIONS.values()):.0f} s in tests (-m {config.getoption('markexpr') or 'all'!r})"
    lines = [f"{d:8.2f} s  {'slow' if k in _SLOW else 'fast'}  {k}" for k, d in rows]
    terminalreporter.write_sep("=", f"slowest tests of {head}")
    for line in lines[:15]:
        terminalreporter.write_line(line)
    path = os.environ.get("CMLITE_DURATIONS")
    if path:
        Path(path).write_text(f"# {head}\n" + "\n".join(lines) + "\n")
        terminalreporter.write_line(f"every test's time: {path}")


ARM_TESTS = "test_arm.py"


@pytest.fixture(scope="session", autouse=True)
def arm_check_job(request, tmp_path_factory):
    """A session that runs the ARM check (tests/test_arm.py: about 8 minutes of aarch64 emulation) starts it with
    its first test, in a thread whose processes take only the CPU the other tests leave idle (SCHED_IDLE); the ARM
    tests run last and wait for it. None when the session does not run them (the fast tier)."""
    if not any(item.path.name == ARM_TESTS for item in request.session.items):
        yield None
        return
    from .arm_check import Background

    job = Background(request.getfixturevalue("tiny_models"), tmp_path_factory.mktemp("arm"))
    yield job
    job.stop()


@pytest.fixture(scope="session")
def reference():
    if not NPZ.is_file():
        pytest.fail(f"official reference outputs not found at {REFERENCE}; set CMLITE_REFERENCE to the folder")
    return dict(np.load(NPZ))


@pytest.fixture(scope="session")
def ref_model():
    from cmlite import lite

    return lite.load_model(CKPT)


@pytest.fixture(scope="session")
def ref_run(ref_model):
    """The reference image through the eager model: (instances, host trace, dense trace)."""
    import torch

    from cmlite import lite

    seg = lite.predictor(ref_model)
    host: dict = {}
    inst = seg.predict(cv2.imread(str(IMAGE)), host)
    dense: dict = {}
    pooled = torch.from_numpy(host["pooled"])
    with torch.inference_mode():
        ref_model.dense(torch.from_numpy(host["preprocessed"].tensor), dense)
        dense["mask_logits"], dense["sam_out"] = ref_model.roi_heads.mask_head(pooled, return_sam=True)
    return inst, host, dense


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder on a read-only file system (a tmpfs mounted ro, as root; without root, a folder without write
    permission), for outputs that cannot be written."""
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True,
                             text=True)
    if mounted.returncode:
        message = f"cannot mount a read-only tmpfs: {mounted.stderr.strip()}"
        pytest.fail(message) if os.environ.get("CMLITE_CI") else pytest.skip(message)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def run_torch_free(code: str, timeout: int = 300):
    """Run python code in a fresh process where `import torch` fails (as on a device without torch)."""
    import subprocess
    import sys
    import textwrap

    prelude = "import sys\nsys.modules['torch'] = None  # any import of torch now raises ImportError\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(capsys, argv) -> str:
    """Run `cmlite ARGV`: it must exit 2 with one line on stderr (cmlite's error prefix, no traceback); returns it."""
    from cmlite.apps.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cmlite: error: ") and err.count("\n") == 0 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="session")
def converted(tmp_path_factory, ref_model):
    """The reference checkpoint converted once per session: {folder name: path}."""
    from cmlite.converters.convert import convert

    out = tmp_path_factory.mktemp("converted")
    folders = convert(ref_model, out, ["onnx", "openvino", "tflite", "tensorrt"], ["fp32", "fp16"], source=CKPT,
                      log=lambda m: None)
    return {f.name: f for f in folders}


@pytest.fixture(scope="session")
def default_models(tmp_path_factory):
    """The embedded default model converted once per session by `cmlite demo`'s own conversion: ONNX Runtime and
    OpenVINO dynamic, TFLite at the val frame (320x320), FP32 and FP16: {folder name: path}."""
    from cmlite import lite
    from cmlite.apps.demo import convert_default

    folders = convert_default(lite.load_model(), tmp_path_factory.mktemp("default_models"), log=lambda m: None)
    return {f.name: f for f in folders}


@pytest.fixture(scope="session")
def default_onnx(tmp_path_factory):
    """The embedded default model on ONNX Runtime FP32 (the apps' tests run it), converted on its own (12 s), so
    that the fast tier needs no other conversion of it."""
    from cmlite import lite
    from cmlite.apps.demo import convert_default

    [folder] = convert_default(lite.load_model(), tmp_path_factory.mktemp("default_onnx"), targets=("onnx",),
                               precisions=("fp32",), log=lambda m: None)
    return folder


def _tiny_models_key() -> str:
    """What the tiny models are made from: every source file of the package that converts, quantizes or writes
    them (lite/, converters/, calibration/, runtimes/), the default weights and the tools' versions."""
    import hashlib

    from cmlite.runtimes.versions import package_versions

    h = hashlib.sha256()
    for folder in ("lite", "converters", "calibration", "runtimes"):
        for path in sorted((REPO / folder).rglob("*.py")):
            h.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    h.update((REPO / "lite" / "weights" / "cmlite_v19_slim_dw_synth.pth").read_bytes())
    h.update(repr(sorted(package_versions("torch", "onnx", "onnxruntime", "openvino", "nncf", "litert-torch",
                                          "ai-edge-litert", "ai-edge-quantizer", "numpy").items())).encode())
    return h.hexdigest()[:20]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The embedded default model at 128x160, converted for every target (FP32) and quantized for every target
    (INT8, nothing kept float) on 8 synthetic training images: the fast tier's run through every exporter, quantizer
    and backend (about a minute). {folder name: path}; "model" is the PyTorch model they were made from, "val" a
    folder of 12 synthetic validation images at 128 px.

    Kept between runs in ~/.cache/cmlite-tests/ under a key of everything that makes them (every source file of
    lite/, converters/, calibration/ and runtimes/, the weights, the tools' versions), so the edit-test loop makes
    them again only when one of those changed; CI (CMLITE_CI=1) and CMLITE_TEST_CACHE=0 always make them."""
    import shutil

    from cmlite import lite

    model = lite.load_model()
    model.config = model.config.with_(min_size=128, max_size=160)
    out = tmp_path_factory.mktemp("tiny_models")
    use_cache = not os.environ.get("CMLITE_CI") and os.environ.get("CMLITE_TEST_CACHE", "1") != "0"
    cached = Path.home() / ".cache" / "cmlite-tests" / f"tiny-models-{_tiny_models_key()}"
    if use_cache and (cached / "complete").is_file():
        shutil.rmtree(out)
        shutil.copytree(cached, out)
    else:
        _make_tiny_models(model, out)
        if use_cache:
            tmp = cached.with_name(cached.name + f".{os.getpid()}.partial")
            shutil.copytree(out, tmp, dirs_exist_ok=True)
            (tmp / "complete").write_text("")
            shutil.rmtree(cached, ignore_errors=True)
            tmp.rename(cached)
    folders = [p for p in out.iterdir() if (p / "manifest.json").is_file()]
    return {"model": model, "val": out / "data" / "val", **{f.name: f for f in folders}}


def _make_tiny_models(model, out: Path) -> None:
    from cmlite import lite
    from cmlite.calibration.frames import read_frames
    from cmlite.calibration.quantize import quantize
    from cmlite.calibration.synth import generate
    from cmlite.converters.convert import convert
    from cmlite.runtimes.target_table import NAMES

    data = out / "data"
    generate(data, 8, 12, 128, 0, progress=False)
    source = lite.DEFAULT_WEIGHTS
    convert(model, out, list(NAMES), ["fp32"], fixed_hw=(128, 160), source=source, log=lambda m: None)
    frames = read_frames(str(data / "train"), 8, progress=False)
    quantize(model, out, list(NAMES), frames, keep_float=[], fixed_hw=(128, 160), source=source, threads=2,
             log=lambda m: None)
