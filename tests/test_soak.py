"""The soak's short form (benchmarks/soak.py): the real app for 1,500 frames of a looped clip while recording,
serving three viewers and a stream of viewers that never read. Memory is judged with a looser bound than the
benchmark's 10 MB; fps is left to the benchmark (speed is never asserted by a test)."""
from __future__ import annotations

import pytest

import json
import subprocess
import sys

from tests.conftest import REPO


@pytest.mark.slow
def test_short_soak_keeps_memory_flat_and_every_frame(tmp_path, default_models):
    out = tmp_path / "soak"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--model",
                           str(default_models["openvino-fp32"]), "--frames", "1500", "--every", "250", "--warmup",
                           "500", "--window", "500", "--rss-limit", "25", "--fps-tolerance", "0", "--stall-every",
                           "5", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    result = json.loads((out / "soak.json").read_text())
    checks = {c["check"]: c for c in result["checks"]}
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert all(c["passed"] for c in checks.values()) and len(checks) == 5, checks
    s = result["summary"]
    assert s["frames"] == s["recorded_frames"] == result["recorded_frames_read_back"] == 1500
    assert s["captured"] == s["taken"] + s["dropped"] + s["pending"]
    assert [x["frames"] for x in result["samples"]][0] >= 250 and len(result["samples"]) >= 5
    assert result["stalled_viewers"] >= 2  # never-reading viewers came and were dropped while the app ran
    assert min(result["viewer_frames"]) > 0.5 * 1500  # the readers kept up: nothing queued behind the stalled
    assert "| frames |" in (out / "soak.md").read_text()
