"""`cmlite pick`: real candidates (the default model at 128x160, ONNX Runtime and OpenVINO, FP32 and INT8) made,
measured (AP on 12 val images in bench's processes, live fps through the camera app) and chosen; then, reusing
the folders: an impossible budget (status 2, one line), and a candidate whose graph is damaged (reported, skipped).
The choice rule itself is checked on figures, every branch."""
from __future__ import annotations

import hashlib
import shutil
import json
from pathlib import Path

import cv2
import pytest

from cmlite import runtimes
from cmlite.apps.cli import main
from cmlite.apps.reports.pick import Candidate
from cmlite.apps.reports.pick_report import choose

SLOW = pytest.mark.slow  # converts and quantizes four folders of the default model (about a minute)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from cmlite.calibration.synth import generate

    d = tmp_path_factory.mktemp("pick_data")
    generate(d, 8, 12, 128, 0, progress=False)
    return d


def _argv(data: Path, tmp: Path, *extra: str) -> list[str]:
    return ["pick", "--calib", str(data / "train"), "--calib-count", "8", "--val",
            str(data / "annotations/instances_val.json"), "--val-images", str(data / "val"),
            "--targets", "onnx,openvino", "--precisions", "fp32,int8", "--min-size", "128", "--max-size", "160",
            "--frames", "12", "--rounds", "1", "--threads", "2", "--mode", "sequential",
            "--models", str(tmp / "models"), *extra]


@pytest.fixture(scope="module")
def picked(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pick")
    assert main(_argv(data, tmp, "--out", str(tmp / "deploy"))) == 0
    return tmp


@SLOW
def test_the_winner_is_the_fastest_within_budget_and_deploys(picked, data):
    out = json.loads((picked / "deploy/pick.json").read_text())
    ref, budget = out["reference"]["mask_ap"], out["settings"]["max_ap_drop"]
    cands = {c["name"]: c for c in out["candidates"]}
    assert set(cands) == {"onnx-fp32", "openvino-fp32", "onnx-int8", "openvino-int8"}
    assert all(c["error"] is None and c["fps"] > 0 and c["peak_rss_mb"] > 0 for c in cands.values())
    within = [c for c in cands.values() if ref - c["mask_ap"] <= budget + 1e-9]
    fastest = max(c["fps"] for c in within)
    winner = cands[out["winner"]]
    assert winner in within and winner["fps"] >= fastest * 0.98  # the fastest, or tied with it (2%)
    assert all(c["verdict"] for c in cands.values())
    folder = picked / "deploy" / out["winner"]
    img = cv2.imread(str(sorted((data / "val").glob("*.png"))[0]))
    assert len(runtimes.load(folder, threads=1).predict(img)) >= 0
    assert (picked / "deploy/pick.html").read_text().count("<svg") == 1  # the front, the budget, the winner


@SLOW
def test_an_impossible_budget_is_one_line_and_status_2(picked, data, capsys):
    assert main(_argv(data, picked, "--max-ap-drop", "-50", "--out", str(picked / "none"))) == 2
    err = capsys.readouterr().err  # the progress lines, then one line saying so
    assert "Traceback" not in err
    err = err.strip().splitlines()[-1]
    assert err.startswith("cmlite: error: ") and "no candidate is within -50.0 mask AP" in err and "the closest:" in err
    out = json.loads((picked / "none/pick.json").read_text())
    assert out["winner"] is None and out["closest"] and not any(p.is_dir() for p in (picked / "none").iterdir())
    assert all(c["made"] == "reused" for c in out["candidates"])  # up-to-date folders are not made again


@SLOW
def test_a_broken_candidate_is_reported_and_skipped(picked, data, capsys):
    """onnx-int8's graph 1 damaged, its manifest's hash updated to match: up to date by every record, refused by
    ONNX Runtime at load: a row with its reason, the others chosen among."""
    folder = picked / "models/onnx-int8"
    graph = folder / "dense.onnx"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["graphs"]["dense"]["sha256"] = hashlib.sha256(graph.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert main(_argv(data, picked, "--out", str(picked / "deploy2"))) == 0
    printed = capsys.readouterr().out
    out = json.loads((picked / "deploy2/pick.json").read_text())
    broken = next(c for c in out["candidates"] if c["name"] == "onnx-int8")
    assert broken["error"] and broken["verdict"].startswith("failed") and "Traceback" not in printed
    assert "onnx-int8" in printed and out["winner"] != "onnx-int8"


def _cand(name, fps, ap, mem, error=None, spread=0.0, p50=None):
    t, p = name.split("-")
    c = Candidate(t, p, Path(name), error=error)
    if error is None:
        c.figures.update(fps=fps, mask_ap=ap, peak_rss_mb=mem, fps_spread=spread, latency_p50_ms=p50)
    return c


def test_the_rule():
    cands = [_cand("onnx-fp32", 20.0, 30.0, 200), _cand("onnx-int8", 50.0, 29.0, 150),
             _cand("openvino-int8", 60.0, 29.6, 180), _cand("tflite-int8", 59.5, 29.7, 120),
             _cand("tflite-fp16", 0, 0, 0, error="could not be made: x")]
    c = choose(cands, 30.0, 0.5)
    assert c.winner.name == "tflite-int8"  # tied with openvino-int8 (within 2%): the smaller memory
    assert c.reasons["onnx-int8"].startswith("over budget") and c.reasons["onnx-fp32"].startswith("slower")
    assert c.reasons["openvino-int8"].startswith("tied on speed") and c.reasons["tflite-fp16"].startswith("failed")
    none = choose(cands, 30.0, -1.0)
    assert none.winner is None and none.closest.name == "onnx-fp32"


def test_a_lead_inside_the_rounds_spread_is_a_tie_settled_by_memory_then_latency():
    fast = _cand("openvino-int8", 60.0, 29.8, 180, spread=1.0, p50=30.0)
    noisy = _cand("tflite-int8", 56.0, 29.8, 120, spread=4.5, p50=40.0)  # 4 fps behind, its rounds 4.5 apart
    steady = _cand("onnx-int8", 56.0, 29.8, 120, spread=0.5, p50=35.0)  # 4 fps behind, beyond both spreads
    c = choose([fast, noisy, steady], 30.0, 0.5)
    assert c.winner is noisy and "within the rounds' spread" in c.reasons["tflite-int8"]
    assert c.reasons["onnx-int8"].startswith("slower") and c.reasons["openvino-int8"].startswith("tied on speed")
    twin = _cand("openvino-fp16", 59.5, 29.8, 120, spread=0.2, p50=25.0)  # tied, as small: the lower latency
    assert choose([fast, noisy, twin], 30.0, 0.5).winner is twin


def test_a_hung_live_run_is_a_failed_row_not_a_hung_pick(tmp_path, tiny_models):
    from cmlite.apps.reports.pick import live_run

    # a 1 fps camera asked for 100 frames cannot finish in 3 s: stopped, reported
    got = live_run(tiny_models["onnx-int8"], "synth:160x120@1", 100, 1, "sequential", tmp_path / "s.json", 3.0)
    assert got == {"error": "no result within 3 s (--live-timeout): stopped"}


def test_the_candidates_follow_what_this_machine_has(tmp_path):
    from cmlite.apps.device_info import cpu
    from cmlite.apps.reports.pick import plan

    cands, left_out = plan(tmp_path, None, None)
    names = {c.name for c in cands}
    has_bf16 = bool({"avx512_bf16", "amx_bf16"} & set(cpu()["isa"]))
    assert ("openvino-bf16" in names) == has_bf16 and not any(n.endswith("bf16") and "openvino" not in n
                                                               for n in names)
    assert {"onnx-fp32", "onnx-int8", "openvino-int8", "tflite-int8", "tflite-fp16"} <= names
    assert [c.precision for c in cands] == sorted((c.precision for c in cands),
                                                  key=("fp32", "fp16", "bf16", "int8").index)  # INT8 after its twin
    assert has_bf16 or any(line.startswith("bf16") for line in left_out)


def test_the_time_cap_skips_the_rest_and_names_them(tmp_path):
    import time

    from cmlite.apps.reports.pick import make, plan

    cands, _ = plan(tmp_path, ["onnx"], ["fp32", "int8"])
    lines = []
    make(cands, None, tmp_path / "none.pth", None, 1, time.monotonic() - 1, lines.append)  # the cap already passed
    assert all(c.skipped and "--max-minutes" in c.skipped for c in cands) and not any(tmp_path.iterdir())
    assert len(lines) == 2 and all("skipped" in line for line in lines)
    c = choose(cands, 30.0, 0.5)
    assert c.winner is None and c.closest is None and all(r.startswith("skipped") for r in c.reasons.values())


def test_folders_another_command_made_are_left_as_they_are(tmp_path, tiny_models):
    """Before: `--models out/models` converted TFLite again at the camera's size into the demo's own folders,
    silently. A folder made by another command for other settings stays, and the candidate goes to
    --models/pick/, said in one line; one pick made, an up-to-date one, or --overwrite stay in place."""
    from cmlite.apps.reports.pick import settle
    from cmlite.calibration.frames import read_frames

    model, source = tiny_models["model"], __import__("cmlite.lite", fromlist=["x"]).DEFAULT_WEIGHTS
    models = tmp_path / "models"
    for name in ("tflite-fp32", "onnx-fp32"):
        shutil.copytree(tiny_models[name], models / name)
    m = json.loads((models / "tflite-fp32/manifest.json").read_text())
    m["input"]["fixed_hw"] = [128, 128]  # made for another frame, as the demo makes its TFLite folders
    m["provenance"]["command"] = "cmlite demo --out out/"
    (models / "tflite-fp32/manifest.json").write_text(json.dumps(m))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (models / "tflite-fp32").iterdir())
    frames = read_frames(str(tiny_models["val"]), 2, progress=False)

    def cands():
        return [Candidate("tflite", "fp32", models / "tflite-fp32"), Candidate("onnx", "fp32", models / "onnx-fp32"),
                Candidate("openvino", "fp32", models / "openvino-fp32")]

    lines = []
    got = cands()
    settle(got, model, source, frames, False, lines.append)
    # onnx-fp32 was made at a fixed 128x160 where pick makes it dynamic: left too; openvino-fp32 is not there
    assert [c.folder for c in got] == [models / "pick/tflite-fp32", models / "pick/onnx-fp32",
                                       models / "openvino-fp32"]
    assert len(lines) == 2 and "made by `cmlite demo --out out/` for other settings (input (128, 128), not " \
                                "(128, 160))" in lines[0] and "left as it is" in lines[0]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (models / "tflite-fp32").iterdir()) == before
    got = cands()
    settle(got, model, source, frames, True, lines.append)  # --overwrite: in place
    assert got[0].folder == models / "tflite-fp32" and len(lines) == 2
    m["provenance"]["command"] = "cmlite pick --out deploy"  # pick's own: made again in place
    (models / "tflite-fp32/manifest.json").write_text(json.dumps(m))
    got = cands()
    settle(got, model, source, frames, False, lines.append)
    assert got[0].folder == models / "tflite-fp32" and len(lines) == 3  # the onnx-fp32 line again
