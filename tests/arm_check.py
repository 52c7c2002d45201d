"""The ARM check (issue 28): cmlite's torch-free runtime on aarch64 kernels, under qemu user-mode emulation on this
x86 machine, against the same run on x86. `.ci/arm_setup.sh` builds and caches what it needs (an arm64 Debian 12
root, qemu 10, the aarch64 wheels: about a minute the first time, seconds after) under CMLITE_ARM_CACHE (default
~/.cache/cmlite-arm), changing nothing else on the machine.

For every model folder given (every CPU target, FP32 and INT8): `cmlite predict --json` on ARM and on x86, the two
runs' instances matched by the parity tool and judged by the precision's criteria (x86 as the reference); each
INT8 model's mask and box AP on ARM against x86; and `cmlite camera --source synth@5 --headless --frames 20 --stats`
on ARM. Emulation proves results, never speed: the seconds it prints are the check's cost, not the device's.

    python -m tests.arm_check --data DIR FOLDER...     (DIR: val/ and annotations/instances_val.json)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / ".ci" / "arm_setup.sh"
CACHE = Path(os.environ.get("CMLITE_ARM_CACHE", Path.home() / ".cache" / "cmlite-arm"))
FEW = 3  # images per FP32 model (emulated FP32 takes 10-20 s an image at 128x160)
AP_IMAGES = 20  # images per INT8 model: its AP on ARM against x86
CAMERA = ["--source", "synth@5", "--headless", "--frames", "20"]  # 5 fps: emulated rendering at 30 costs 20 s


class ArmUnavailable(Exception):
    """The check cannot run on this machine (not an x86_64 Debian host, or the packages cannot be fetched)."""


def setup(cache: Path = CACHE, timeout: float = 900, runner: Runner | None = None) -> Path:
    """Build (or find cached) the emulated aarch64 Python with cmlite and its backends: the `armpy` wrapper."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        raise ArmUnavailable(f"the ARM check emulates aarch64 on an x86_64 Linux host, not {platform.system()} "
                             f"{platform.machine()}")
    for tool in ("apt-get", "dpkg-deb", "bash"):
        if not shutil.which(tool):
            raise ArmUnavailable(f"the ARM check needs {tool} (a Debian host: it downloads the arm64 root with apt)")
    env = {**os.environ, "CMLITE_VENV_PY": sys.executable, "CMLITE_SRC": str(REPO), "NICE": "0"}
    runner = runner or FOREGROUND
    try:
        r = runner.run(["bash", str(SETUP), str(cache)], timeout, env=env)
    except subprocess.TimeoutExpired:
        raise ArmUnavailable(f".ci/arm_setup.sh took over {runner.timeout(timeout):.0f} s") from None
    if r.returncode:
        tail = " | ".join((r.stdout + r.stderr).strip().splitlines()[-4:])
        raise ArmUnavailable(f".ci/arm_setup.sh failed (status {r.returncode}): {tail}")
    return cache / "bin" / "armpy"


@dataclass
class Row:
    model: str
    precision: str
    images: int = 0
    arm_s: float = 0.0
    verdict: str = ""
    failed: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    ap: dict = field(default_factory=dict)  # {"arm": {...}, "x86": {...}} (INT8)
    error: str = ""  # what ARM said when it could not run the model


def idle() -> None:
    """The calling process (and what it starts) takes only CPU nothing else wants (Linux SCHED_IDLE): the check
    can run beside the rest of the test suite without slowing it."""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


class Runner:
    """Runs the check's processes, killed together by stop(); background=True runs them at SCHED_IDLE, with
    timeouts long enough for a process that gets only the CPU the rest of the suite leaves."""

    def __init__(self, background: bool = False):
        self.background = background
        self.stopped = False
        self._procs: set[subprocess.Popen] = set()

    def timeout(self, seconds: float) -> float:
        return seconds * 6 if self.background else seconds

    def run(self, argv: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
        if self.stopped:
            raise ArmUnavailable("the ARM check was stopped (the test session ended)")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=idle if self.background else None)
        self._procs.add(proc)
        try:
            out, err = proc.communicate(timeout=self.timeout(timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        finally:
            self._procs.discard(proc)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def stop(self) -> None:
        self.stopped = True
        for proc in list(self._procs):
            proc.kill()


FOREGROUND = Runner()


def _cli(python: list[str], args: list[str], timeout: float,
         runner: Runner = FOREGROUND) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    r = runner.run([*python, "-m", "cmlite.apps.cli", *args], timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return r, time.perf_counter() - t0


def _error(r: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"status {r.returncode}"


def check_model(armpy: Path, folder: Path, images: Path, ann: Path, out: Path, timeout: float = 600,
                runner: Runner = FOREGROUND) -> Row:
    """One folder on ARM and on x86, judged as parity judges a conversion (x86 the reference)."""
    from cmlite.apps.parity import compare_instances, judge
    from cmlite.calibration.coco_eval import coco_metrics, load_coco
    from cmlite.calibration.coco_results import from_coco_results
    from cmlite.runtimes.images import read_bgr
    from cmlite.runtimes.manifest import read_manifest

    m = read_manifest(folder)
    row = Row(folder.name, m.precision)
    runs = {}
    for side, python in (("arm", [str(armpy)]), ("x86", [sys.executable])):
        path = out / f"{folder.name}.{side}.json"
        r, seconds = _cli(python, ["predict", "--model", str(folder), str(images), "--json", str(path),
                                   "--threads", "2"], timeout, runner)
        if r.returncode:
            row.error = f"{side}: {_error(r)}"
            return row
        runs[side] = json.loads(path.read_text())
        if side == "arm":
            row.arm_s = seconds
    files = sorted(p for p in images.iterdir() if p.is_file())
    row.images = len(files)
    results = []
    for f in files:
        hw = read_bgr(f).shape[:2]
        ref, got = (from_coco_results([r for r in runs[s] if r["file_name"] == str(f)], hw, m.model["category_ids"],
                                      m.class_names) for s in ("x86", "arm"))
        results.append(compare_instances(ref, got, m.pipeline.post_nms_topk))
    v = judge(results, m.precision)
    row.verdict, row.failed, row.figures = v.word, v.failed, v.figures
    if m.precision == "int8":
        gt = load_coco(ann)
        ids = sorted({r["image_id"] for s in runs for r in runs[s]})
        row.ap = {s: coco_metrics(gt, runs[s], ids) for s in ("arm", "x86")}
    return row


def check_camera(armpy: Path, folder: Path, out: Path, timeout: float = 300, runner: Runner = FOREGROUND) -> dict:
    """The live app on ARM: its --stats, or {"error": its last line}."""
    stats = out / f"camera-{folder.name}.arm.json"
    r, seconds = _cli([str(armpy)], ["camera", "--model", str(folder), *CAMERA, "--stats", str(stats)], timeout,
                      runner)
    if r.returncode or not stats.is_file():
        return {"error": _error(r), "seconds": seconds}
    return {**json.loads(stats.read_text()), "seconds": seconds}


def image_sets(data: Path, out: Path) -> tuple[Path, Path]:
    """The first AP_IMAGES val images (INT8), and the first FEW of them (FP32), each in a folder of its own."""
    files = sorted(p for p in (data / "val").iterdir() if p.suffix == ".png")[:AP_IMAGES]
    if len(files) < AP_IMAGES:
        raise ValueError(f"{data / 'val'} has {len(files)} images; the ARM check needs {AP_IMAGES}")
    sets = []
    for name, chosen in (("ap", files), ("few", files[:FEW])):
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        for f in chosen:
            shutil.copy(f, d / f.name)
        sets.append(d)
    return sets[0], sets[1]


def run(armpy: Path, folders: list[Path], data: Path, out: Path, camera_model: str = "tflite-int8",
        log=print, runner: Runner = FOREGROUND) -> tuple[list[Row], dict]:
    out.mkdir(parents=True, exist_ok=True)
    ap_images, few = image_sets(data, out / "images")
    ann = data / "annotations" / "instances_val.json"
    rows = []
    for folder in folders:
        int8 = folder.name.endswith("int8")
        rows.append(check_model(armpy, folder, ap_images if int8 else few, ann, out, runner=runner))
        log(f"arm check: {folder.name}: {rows[-1].error or rows[-1].verdict} ({rows[-1].arm_s:.0f} s on ARM)")
    camera = check_camera(armpy, next(f for f in folders if f.name == camera_model), out, runner=runner)
    log(f"arm check: camera on {camera_model}: {camera.get('error') or str(camera['frames']) + ' frames'} "
        f"({camera['seconds']:.0f} s)")
    return rows, camera


def suite_check(models: dict[str, Path], out: Path, runner: Runner = FOREGROUND) -> dict:
    """What tests/test_arm.py judges: every CPU target's FP32 and INT8 folder of the fast tier's models (`models`:
    name -> folder) and the camera. -> rows, camera, and the set-up's and the whole check's seconds."""
    from cmlite.calibration.synth import generate
    from cmlite.runtimes.target_table import CPU_TARGETS

    t0 = time.perf_counter()
    armpy = setup(runner=runner)
    setup_s = time.perf_counter() - t0
    generate(out / "data", 0, AP_IMAGES, 128, 0, progress=False)  # the val images the models were made for
    folders = [models[f"{t}-{p}"] for t in CPU_TARGETS for p in ("fp32", "int8")]
    rows, camera = run(armpy, folders, out / "data", out / "runs", log=lambda m: None, runner=runner)
    return {"rows": rows, "camera": camera, "setup_s": setup_s, "seconds": time.perf_counter() - t0}


class Background:
    """suite_check in a thread of its own, its processes at SCHED_IDLE: started with the test session, its minutes
    of emulation fill the CPU the other tests leave idle (they wait on servers, browsers, paced sources) instead of
    adding to the suite's time. result() waits for it; stop() kills what it runs."""

    def __init__(self, models: dict[str, Path], out: Path):
        self.runner = Runner(background=True)
        self._result: dict | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(models, out), name="arm-check", daemon=True)
        self.thread.start()

    def _run(self, models, out) -> None:
        try:
            self._result = suite_check(models, out, self.runner)
        except BaseException as e:  # raised again in the test that waits for it
            self._error = e

    def result(self) -> dict:
        self.thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(timeout=30)


def table(rows: list[Row]) -> str:
    from cmlite.apps.table import format_table

    def ap(r, kind):
        if not r.ap:
            return "-"
        a, x = r.ap["arm"][f"{kind}_ap"], r.ap["x86"][f"{kind}_ap"]
        return f"{a:.1f} / {x:.1f} ({a - x:+.1f})"

    body = [[r.model, r.images, f"{r.arm_s:.0f}", "fails: " + r.error if r.error else
             f"{r.figures['found']}/{r.figures['instances']} found, {r.figures['new']} new",
             r.figures.get("median_mask_iou", float("nan")), r.figures.get("low_mask_iou", float("nan")),
             r.figures.get("score_diff", float("nan")), ap(r, "mask"), ap(r, "box"),
             r.verdict + (f" ({'; '.join(r.failed)})" if r.failed else "")] for r in rows]
    return format_table(["model", "images", "ARM s (emulated)", "ARM against x86", "median mask IoU",
                         "low mask IoU", "score change", "mask AP ARM / x86", "box AP ARM / x86", "verdict"],
                        body, floatfmt=".3f")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("arm-check"))
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    rows, camera = run(setup(), args.folders, args.data, args.out)
    print(table(rows))
    shown = camera.get("error") or json.dumps({k: camera[k] for k in ("frames", "fps_mean", "device")})
    print(f"camera on ARM: {shown}")
    print(f"{time.perf_counter() - t0:.0f} s in all, {platform.processor() or platform.machine()}")
    return 0 if all(r.verdict == "PASS" for r in rows) and "error" not in camera else 1


if __name__ == "__main__":
    sys.exit(main())
