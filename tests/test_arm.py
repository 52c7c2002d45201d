"""ARM kernels (issue 28): the fast tier's models of every CPU target (the embedded default at 128x160, FP32 and
INT8) run torch-free on aarch64 under qemu user mode and judged against the same run on x86 (tests/arm_check.py;
.ci/arm_setup.sh builds and caches the arm64 root, qemu and the aarch64 wheels). It proves results, never speed.
Where it cannot run (not an x86_64 Debian host, no package registry) it skips saying why; under CMLITE_CI=1 (CI)
it fails instead. About 8 minutes of emulation on 2 cores, one more the first time (the downloads): in the full
suite it starts with the session in processes that take only idle CPU (conftest.py's arm_check_job), and these
tests run last and wait for it."""
from __future__ import annotations

import os

import pytest

from . import arm_check
from .conftest import SUMMARIES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def arm_run(arm_check_job, tiny_models, tmp_path_factory):
    """The check the session started in the background (conftest.py), or, when it did not, run here."""
    try:
        if arm_check_job is not None:
            result = arm_check_job.result()
            how = "in the background from the session's start"
        else:
            result = arm_check.suite_check(tiny_models, tmp_path_factory.mktemp("arm"))
            how = "in the foreground"
    except arm_check.ArmUnavailable as e:
        if os.environ.get("CMLITE_CI"):
            pytest.fail(f"the ARM check cannot run: {e}")
        pytest.skip(f"the ARM check cannot run here: {e}")
    rows, camera = result["rows"], result["camera"]
    SUMMARIES.append((f"ARM check: aarch64 (qemu, cortex-a76) against x86, {result['seconds']:.0f} s {how} "
                      f"(set-up {result['setup_s']:.0f} s)",
                      arm_check.table(rows) + f"\ncamera on ARM: {camera.get('error') or camera['frames']} frames"))
    return {r.model: r for r in rows}, camera


def test_every_cpu_target_runs_on_arm_as_on_x86(arm_run):
    """FP32 and INT8 of every CPU target load and run on aarch64 kernels, and their instances pass the precision's
    parity criteria against x86 (FP32: every instance, masks IoU >= 0.98, scores within 0.001)."""
    rows, _ = arm_run
    assert len(rows) == 6
    for name, r in rows.items():
        assert not r.error, f"{name} on ARM: {r.error}"
        assert r.verdict == "PASS", (name, r.failed, r.figures)
        assert r.figures["instances"] >= 20, (name, r.figures)  # enough to judge


def test_int8_mask_ap_on_arm_is_within_half_a_point_of_x86(arm_run):
    rows, _ = arm_run
    for name, r in rows.items():
        if name.endswith("int8"):
            arm, x86 = r.ap["arm"]["mask_ap"], r.ap["x86"]["mask_ap"]
            assert x86 > 10 and abs(arm - x86) <= 0.5, (name, arm, x86)


def test_the_camera_app_runs_on_arm(arm_run):
    _, camera = arm_run
    assert "error" not in camera, camera
    assert camera["frames"] == 20 and camera["fps_mean"] > 0 and camera["backend"] == "tflite", camera
