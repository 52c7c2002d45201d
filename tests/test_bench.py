"""`cmlite bench` and `cmlite report`: real runs of converted models in their own processes, the three report
files with every key, percentiles against the standard library, the HTML's plots in headless Chromium, merging
across devices, and each bad input's one line."""
from __future__ import annotations

import contextlib
import io
import json
import math
import re
import statistics
import subprocess

import cv2
import numpy as np
import pytest

from cmlite.apps.reports.bench_worker import RowSpec
from cmlite.runtimes.pipeline import STAGES
from cmlite.apps.cli import main
from cmlite.apps.latency_stats import summarize
from cmlite.apps.reports.report_plots import pareto
from tests.system_tools import need

RESULT_KEYS = ("model", "target", "precision", "threads", "size", "latency_ms", "fps", "stages_ms", "peak_rss_mb",
               "load_ms", "size_mb", "mask_ap", "box_ap", "cold_ms", "detections_per_image", "latency_samples_ms",
               "error")


# -- statistics ---------------------------------------------------------------------------------------------

def test_percentiles_of_known_samples():
    s = summarize(range(1, 11))  # 1..10: rank p/100 * 9, linear between neighbours
    assert s == {"p50": 5.5, "p90": 9.1, "p99": 9.91, "mean": 5.5, "std": round(math.sqrt(82.5 / 9), 3)}
    skewed = [10.0, 10.0, 10.0, 100.0, 12.0, 11.0, 250.0]
    ref = statistics.quantiles(skewed, n=100, method="inclusive")  # the same definition, independently computed
    s = summarize(skewed, digits=6)
    assert s["p50"] == pytest.approx(statistics.median(skewed)) and s["p90"] == pytest.approx(ref[89])
    assert s["p99"] == pytest.approx(ref[98]) and s["std"] == pytest.approx(statistics.stdev(skewed))
    assert s["mean"] == pytest.approx(statistics.fmean(skewed))
    assert summarize([42.0]) == {"p50": 42.0, "p90": 42.0, "p99": 42.0, "mean": 42.0, "std": 0.0}
    assert set(summarize([]).values()) == {None}


def test_speed_accuracy_front():
    pts = [(100, 30.0), (50, 28.0), (60, 27.0), (200, 31.0), (150, 29.0), (50, 26.0)]
    assert pareto(pts) == [(50, 28.0), (100, 30.0), (200, 31.0)]


def test_device_fingerprint_of_this_machine():
    from cmlite.apps.device_info import cpu, fingerprint

    d = fingerprint("bench-box")
    assert d["name"] == "bench-box" and d["cpu"]["model"] and d["cpu"]["usable_cores"] >= 1
    flags = set(open("/proc/cpuinfo").read().split())
    assert ("avx2" in d["cpu"]["isa"]) == ("avx2" in flags) and ("avx512_vnni" in d["cpu"]["isa"]) == (
        "avx512_vnni" in flags)
    assert d["memory_gb"] > 1 and d["python"].count(".") == 2
    import numpy
    import onnxruntime

    assert d["packages"]["numpy"] == numpy.__version__ and d["packages"]["onnxruntime"] == onnxruntime.__version__
    assert cpu() is cpu()  # read once


def test_jetson_and_gpu_parsers():
    """The formats L4T, nvpmodel and nvidia-smi print (as documented by NVIDIA)."""
    from cmlite.apps.device_info import parse_cpuinfo, parse_l4t, parse_nvidia_smi, parse_nvpmodel

    assert parse_l4t("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64") == "35.4.1"
    assert parse_l4t("garbage") is None
    assert parse_nvpmodel("NV Power Mode: MAXN\n0\n") == "MAXN"
    assert parse_nvpmodel("NV Power Mode: 15W\n1") == "15W"
    gpus = parse_nvidia_smi("NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB, 9.0\n")
    assert gpus == [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "memory": "81559 MiB",
                     "compute_capability": "9.0"}]
    model, flags = parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd asimddp i8mm bf16\n"
                                 "CPU part\t: 0xd4b\n")
    assert model is None and {"asimddp", "i8mm", "bf16"} <= flags


# -- a real run --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def val_set(tmp_path_factory):
    from cmlite.calibration.synth import generate

    d = tmp_path_factory.mktemp("bench_val") / "data"
    generate(d, 0, 4, 320, 0, progress=False)
    return d


@pytest.fixture(scope="module")
def default_openvino(default_models):
    return default_models["openvino-fp32"]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory, default_onnx, default_openvino, val_set):
    """Two converted models and a folder that fails to load, 1 thread, 3 runs, AP on 4 images."""
    out = tmp_path_factory.mktemp("bench") / "report"
    broken = tmp_path_factory.mktemp("broken") / "onnx-fp32"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(["bench", "--model", str(default_onnx), "--model", str(default_openvino), "--model", str(broken),
                   "--images", str(val_set / "val"), "--threads", "1", "--runs", "3", "--warmup", "1",
                   "--throughput", "6", "--streams", "1,2", "--data", str(val_set / "annotations" / "instances_val.json"),
                   "--data-images", str(val_set / "val"), "--device-name", "box-a", "--out", str(out)])
    (out / "printed.txt").write_text(printed.getvalue())
    return rc, out


def test_bench_writes_the_three_files_with_every_key(bench_run, capsys):
    rc, out = bench_run
    assert rc == 1  # a row failed: the report is written and the exit code says so
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == "cmlite-bench" and report["schema_version"] == 1
    assert report["device"]["name"] == "box-a" and report["device"]["cpu"]["isa"] is not None
    s = report["settings"]
    assert s["runs"] == 3 and s["warmup"] == 1 and s["threads"] == [1] and s["data"]["count"] == 4
    rows = {r["target"]: r for r in report["results"] if not r["error"]}
    assert set(rows) == {"onnx", "openvino"}
    for r in rows.values():
        assert all(k in r for k in RESULT_KEYS), set(RESULT_KEYS) - set(r)
        lat = r["latency_ms"]
        assert len(r["latency_samples_ms"]) == 3
        assert lat == pytest.approx(summarize(r["latency_samples_ms"]), abs=2e-3)  # of the samples it keeps
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] and r["fps"] == pytest.approx(1e3 / lat["mean"], rel=1e-3)
        assert set(r["stages_ms"]) == set(STAGES) and sum(r["stages_ms"].values()) <= lat["p99"] * 1.05
        assert r["threads"] == 1 and r["size"] == [320, 533] and r["precision"] == "fp32"
        assert r["peak_rss_mb"] > 50 and r["load_ms"] > 0 and r["cold_ms"] > 0
        assert r["size_mb"] > 10 and r["detections_per_image"] > 0
        assert 10 < r["mask_ap"] <= 100 and 10 < r["box_ap"] <= 100 and r["ap_images"] == 4
        st = r["stages_ms"]
        assert r["graph_bound_fps"] == pytest.approx(1e3 / (st["graph1"] + st["graph2"]), rel=1e-3)
        for mode in ("sequential", "overlap", "throughput"):  # a stream of 6 images each way, images/s and latency
            t = r["throughput"][mode]
            assert 0 < t["images_per_s"] < 1e3 and t["latency_ms"] > 0, (mode, t)
            assert len(t["rounds"]) == 2 and min(t["rounds"]) <= t["images_per_s"] <= max(t["rounds"])
        by = {(e["streams"], e["mode_asked"]): e for e in r["streams"]}  # 1 and 2 streams of 6 images, each mode
        assert set(by) == {(n, m) for n in (1, 2) for m in ("sequential", "throughput")}
        for (n, mode), e in by.items():
            assert 0 < e["images_per_s"] < 1e3 and len(e["per_stream_images_per_s"]) == n, (n, mode, e)
            assert 0 < e["latency_ms"]["p50"] <= e["latency_ms"]["p90"] <= e["latency_ms"]["p99"]
            assert 0.5 <= e["slowest_of_mean"] <= 1.0
        assert by[(2, "throughput")]["mode"] == "throughput (1 lane x 1 thread)"  # 1 thread: one lane
    # the same FP32 graphs on two backends: the same detections and AP
    assert abs(rows["onnx"]["mask_ap"] - rows["openvino"]["mask_ap"]) < 0.5
    failed = [r for r in report["results"] if r["error"]]
    assert len(failed) == 1 and "load failed" in failed[0]["error"] and "manifest" in failed[0]["error"]
    md = (out / "report.md").read_text()
    for title in ("Latency (ms) and throughput", "Per stage, p50 ms", "Memory, size and accuracy",
                  "Throughput: images per second of a stream", "Streams: images per second of N streams at once",
                  "Rows that failed or were not evaluated", "INT8/BF16 ISA"):
        assert title in md
    assert re.search(r"\| onnx-fp32 \| onnx \| fp32 \| 1 \| 320/533 \| \d+\.\d \|", md)
    printed = (out / "printed.txt").read_text()  # the terminal gets the throughput and streams tables too
    for title in ("Throughput: images per second of a stream", "Streams: images per second of N streams at once"):
        assert title in printed
    assert re.search(r"onnx-fp32 +1 +320/533 .* \d+\.\d \d+\.\d-\d+\.\d \(\d+%\)", printed)


def test_every_row_that_clashes_says_its_folder():
    """Two --models-dir with an onnx-fp32 each: before, only the first row said which one it was."""
    from cmlite.apps.reports.bench import _labels

    class Row:
        def __init__(self, path):
            self.spec = RowSpec("model", path, 1)
            self.info = {"target": "onnx", "precision": "fp32", "variant": "V", "path": path}

    rows = [Row("a/onnx-fp32"), Row("b/onnx-fp32"), Row("b/openvino-fp32")]
    rows[2].info["target"] = "openvino"
    assert _labels(rows) == ["onnx-fp32 (a/onnx-fp32)", "onnx-fp32 (b/onnx-fp32)", "openvino-fp32"]


def test_bench_html_has_its_plots(bench_run):
    _, out = bench_run
    page = (out / "report.html").read_text()
    for pid in ("stages", "distribution", "threads", "streams", "front"):
        m = re.search(rf'<figure id="plot-{pid}"><svg.*?</svg>', page, re.S)
        assert m and m.group(0).count("<path") > 5, pid
    assert "src=" not in page and "href=\"http" not in page  # self-contained
    assert "onnx-fp32" in page and "openvino-fp32" in page


def _texts(svg: str) -> dict[str, list[float]]:
    """Each text of a matplotlib SVG (svg.fonttype none) -> the y of its position, top down."""
    out: dict[str, list[float]] = {}
    for m in re.finditer(r'<text[^>]*? y="([\d.-]+)"[^>]*>([^<]*)</text>', svg):
        out.setdefault(m.group(2).strip(), []).append(float(m.group(1)))
    return out


def test_report_plots_are_readable(bench_run):
    """Before: the stage legend sat on the longest bar; speed/accuracy spanned 0.2 AP with 3-decimal ticks and
    named only the front; one thread count gave a column of pale dots; the plots filled half the page."""
    _, out = bench_run
    page = (out / "report.html").read_text()
    svg = {pid: re.search(rf'<figure id="plot-{pid}">(<svg.*?</svg>)', page, re.S).group(1)
           for pid in ("stages", "threads", "front")}
    t = _texts(svg["stages"])
    assert min(t["graph 1"]) > max(t["ms (p50 per stage)"])  # the legend below the axis, outside the bars
    assert "Throughput (one thread count measured)" in svg["threads"] and svg["threads"].count("<path") >= 2  # bars
    t = _texts(svg["front"])
    ticks = [float(k) for k in t if re.fullmatch(r"\d+\.\d", k)]
    assert max(ticks) - min(ticks) >= 2.0 and not any(re.fullmatch(r"\d+\.\d{3}", k) for k in t)
    assert {"onnx-fp32 (1 thr)", "openvino-fp32 (1 thr)"} <= set(t)  # every point named
    assert "figure svg { width: 100%; height: auto; }" in page


def test_bench_html_in_chromium_shows_the_plots(bench_run, tmp_path):
    chromium = need("chromium", "chromium")
    _, out = bench_run
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--window-size=1400,2600", f"--screenshot={shot}", (out / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    img = cv2.imread(str(shot)).astype(int)

    def pixels(rgb: str) -> int:
        r, g, b = (int(rgb[i:i + 2], 16) for i in (1, 3, 5))
        return int((np.abs(img - (b, g, r)).sum(axis=2) < 30).sum())

    # the stacked bars' stage colours (graph 1 blue, host orange, graph 2 green; the dots of the AP plot are blue
    # too): drawn, not only present in the file
    assert pixels("#1f77b4") > 2000 and pixels("#2ca02c") > 1000 and pixels("#ff7f0e") > 100, \
        [pixels(c) for c in ("#1f77b4", "#2ca02c", "#ff7f0e")]
    rows_with_ink = (img.sum(axis=2) < 600).any(axis=1).sum()
    assert rows_with_ink > 1200  # tables and four plots, not a blank or broken page


def test_reports_merge_across_devices(bench_run, default_onnx, val_set, tmp_path, capsys):
    _, out_a = bench_run
    out_b = tmp_path / "b"
    assert main(["bench", "--model", str(default_onnx), "--images", str(val_set / "val" / "000001.png"),
                 "--threads", "1,2", "--runs", "2", "--warmup", "0", "--device-name", "box-b", "--max-procs", "1",
                 "--out", str(out_b)]) == 0
    merged = tmp_path / "merged"
    assert main(["report", str(out_a / "report.json"), str(out_b), "--out", str(merged)]) == 0
    m = json.loads((merged / "report.json").read_text())
    assert m["schema"] == "cmlite-bench-merged" and [r["device"]["name"] for r in m["reports"]] == ["box-a", "box-b"]
    b_rows = m["reports"][1]["results"]
    assert [r["threads"] for r in b_rows] == [1, 2] and all(r["mask_ap"] is None for r in b_rows)
    assert all(len(r["latency_samples_ms"]) == 2 and not r["error"] for r in b_rows)  # in two batches of one
    assert "in batches of 1 processes" in m["reports"][1]["settings"]["method"]
    md = (merged / "report.md").read_text()
    assert "| model | target | precision | threads | size | box-a | box-b |" in md
    assert re.search(r"\| onnx-fp32 \| onnx \| fp32 \| 1 \| 320/533 \| [\d.]+ ms / [\d.]+ fps \| [\d.]+ ms", md)
    assert re.search(r"\| onnx-fp32 \| onnx \| fp32 \| 2 \| 320/533 \| – \| [\d.]+ ms", md)  # only box-b ran 2
    page = (merged / "report.html").read_text()
    stages = re.search(r'<figure id="plot-stages">.*?</figure>', page, re.S).group(0)
    assert "box-a" in stages and "box-b" in stages  # the same plot, a column per device
    # a merged report merges again (flattened), and a device seen twice gets a distinct name
    # box-b's report twice (merged and on its own) is merged once, with a warning (before: "box-b" and "box-b #2"
    # without a word); another run of the same device keeps a distinct name
    again = tmp_path / "again"
    assert main(["report", str(merged), str(out_b), "--out", str(again)]) == 0
    names = [r["device"]["name"] for r in json.loads((again / "report.json").read_text())["reports"]]
    assert names == ["box-a", "box-b"]
    assert "repeats the report of box-b already read from" in capsys.readouterr().err
    rerun = json.loads((out_b / "report.json").read_text())
    rerun["settings"]["created"] = "2026-01-01T00:00:00+00:00"
    (tmp_path / "rerun.json").write_text(json.dumps(rerun))
    assert main(["report", str(merged), str(tmp_path / "rerun.json"), "--out", str(again)]) == 0
    names = [r["device"]["name"] for r in json.loads((again / "report.json").read_text())["reports"]]
    created = m["reports"][1]["settings"]["created"][:16].replace("T", " ")
    assert names == ["box-a", f"box-b, {created} UTC", "box-b, 2026-01-01 00:00 UTC"]  # when each ran, not "#2"


def test_report_without_matplotlib_has_tables_and_says_how(bench_run, tmp_path):
    from tests.conftest import run_torch_free

    _, out = bench_run
    res = run_torch_free(f"""
        sys.modules['matplotlib'] = None
        from cmlite.apps.cli import main
        sys.exit(main(['report', {str(out)!r}, '--out', {str(tmp_path)!r}]))
    """)
    assert res.returncode == 0, res.stderr
    assert "matplotlib is not installed (pip install 'cmlite[report]'" in res.stderr
    page = (tmp_path / "report.html").read_text()
    assert "<svg" not in page and "Latency (ms) and throughput" in page and "pip install" in page


# -- bad input ---------------------------------------------------------------------------------------------

def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cmlite: error: "), err
    return err[0]


def test_bench_bad_input(tmp_path, capsys, val_set, default_onnx):
    images = str(val_set / "val")
    assert "no models to bench" in _error(capsys, ["bench", "--images", images, "--out", str(tmp_path / "r")])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    assert "cannot decode image" in _error(capsys, ["bench", "--model", str(default_onnx), "--images", str(bad),
                                                    "--out", str(tmp_path / "r")])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no converted model folders" in _error(capsys, ["bench", "--models-dir", str(empty), "--images", images,
                                                           "--out", str(tmp_path / "r")])
    for flag, value, words in (("--threads", "0", "at least 1"), ("--threads", "a,b", "separated by commas"),
                               ("--size", "320x533", "SHORT/LONG"), ("--size", "600/300", "long side"),
                               ("--runs", "0", "at least 1 run"), ("--max-procs", "0", "at least 1"),
                               ("--streams", "0,2", "from 1 to 64"), ("--streams", "two", "separated by commas")):
        assert words in _error(capsys, ["bench", "--model", str(default_onnx), "--images", images, flag, value,
                                        "--out", str(tmp_path / "r")])
    assert "go together" in _error(capsys, ["bench", "--model", str(default_onnx), "--images", images,
                                            "--data", "x.json", "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()  # nothing written by a run that did not start


def test_report_bad_input(tmp_path, capsys, bench_run):
    _, out = bench_run
    report = json.loads((out / "report.json").read_text())
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**report, "schema_version": 2}))
    line = _error(capsys, ["report", str(newer), "--out", str(tmp_path / "m")])
    assert "schema version 2" in line and "reads version 1" in line and "upgrade cmlite" in line
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"model": "x"}]))  # e.g. the old demo's report.json
    assert "is not a cmlite bench report" in _error(capsys, ["report", str(other), "--out", str(tmp_path / "m")])
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{oops")
    assert "not JSON" in _error(capsys, ["report", str(garbage), "--out", str(tmp_path / "m")])
    assert "report not found" in _error(capsys, ["report", str(tmp_path / "nope.json"), "--out", str(tmp_path / "m")])
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps({**report, "results": [{"model": "x"}]}))
    assert "lacks target" in _error(capsys, ["report", str(damaged), "--out", str(tmp_path / "m")])
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_ctrl_c_stops_the_rows_and_writes_nothing(tmp_path, default_onnx, val_set):
    """SIGINT to the whole process group (as a terminal's Ctrl-C): one line, status 130, no report, no traceback
    from the row processes, none of them left running."""
    import os
    import signal
    import sys
    import time

    from tests.conftest import REPO

    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "cmlite.apps.cli", "bench", "--model", str(default_onnx), "--images",
                             str(val_set / "val"), "--threads", "1,2", "--runs", "500", "--out", str(out)],
                            cwd=REPO, stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(12)  # loaded, running rounds
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "cmlite: interrupted" in err and "Traceback" not in err, err[-2000:]
    assert not out.exists()
    deadline = time.monotonic() + 10  # the group empties: no row process outlives the run
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("processes of the interrupted bench are still running")


def _hanging_copy(folder, out):
    """The model with an endless Loop before its first layer: it loads, and its first inference never returns."""
    import shutil

    import onnx
    from onnx import TensorProto, helper

    from cmlite.runtimes.manifest import sha256

    shutil.copytree(folder, out)
    m = json.loads((out / "manifest.json").read_text())
    graph_file = out / m["graphs"]["dense"]["file"]
    model = onnx.load(str(graph_file))
    g = model.graph
    name = g.input[0].name
    for node in g.node:
        node.input[:] = [f"{name}_looped" if i == name else i for i in node.input]
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
        "forever", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                    helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                    helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    g.initializer.extend([helper.make_tensor("trips", TensorProto.INT64, [], [2 ** 62]),
                          helper.make_tensor("always", TensorProto.BOOL, [], [True])])
    g.node.insert(0, helper.make_node("Loop", ["trips", "always", name], [f"{name}_looped"], body=body))
    onnx.save(model, str(graph_file))
    m["graphs"]["dense"]["sha256"] = sha256(graph_file)
    if "bytes" in m["graphs"]["dense"]:
        m["graphs"]["dense"]["bytes"] = graph_file.stat().st_size
    (out / "manifest.json").write_text(json.dumps(m, indent=2))
    return out


@pytest.mark.slow
def test_a_row_that_hangs_is_killed_after_row_timeout_and_the_others_finish(tmp_path, default_onnx, val_set, capsys):
    """A real model that never returns (ONNX Runtime looping for ever in its first inference) beside a good one:
    the hung row's process is killed after --row-timeout and reported; the good row has all its rounds."""
    import time

    hung = _hanging_copy(default_onnx, tmp_path / "hung" / "onnx-fp32")
    out = tmp_path / "r"
    t0 = time.monotonic()
    rc = main(["bench", "--model", str(hung), "--model", str(default_onnx), "--images", str(val_set / "val"),
               "--threads", "1", "--runs", "3", "--warmup", "1", "--throughput", "4", "--row-timeout", "10",
               "--out", str(out)])
    assert time.monotonic() - t0 < 120
    assert rc == 1
    rows = {r["path"]: r for r in json.loads((out / "report.json").read_text())["results"]}
    bad, good = rows[str(hung)], rows[str(default_onnx)]
    assert bad["timed_out"] and "no answer to 'load' in 10 s" in bad["error"] and "--row-timeout" in bad["error"]
    assert good["error"] is None and not good["timed_out"] and len(good["latency_samples_ms"]) == 3
    assert good["throughput"]["sequential"]["images_per_s"] > 0
    err = capsys.readouterr().err
    assert "--row-timeout" in err


def test_no_minus_on_a_zero_and_no_blank_columns_or_headers():
    """Before: "-0.0" in "Against FP32", a blank header row over the Device table, and an empty "mask AP" column in
    `bench`'s table when no --data was given."""
    from cmlite.apps.reports.report_md import speed_table
    from cmlite.apps.reports.report_tables import device_tables
    from cmlite.apps.table import format_table, markdown_table, number

    assert [number(v, ".1f") for v in (-0.04, -0.0, 0.04, -0.06, -1.0)] == ["0.0", "0.0", "0.0", "-0.1", "-1.0"]
    assert "-0.0" not in format_table(["d"], [[-0.01]], ".1f") + markdown_table(["d"], [[-0.01]])
    row = {"model": "onnx-int8", "target": "onnx", "precision": "int8", "threads": 2, "size": None,
           "latency_ms": {"p50": 10.0, "p90": 11.0, "p99": 12.0, "mean": 10.2, "std": 0.5}, "fps": 98.0,
           "stages_ms": {s: 1.0 for s in STAGES}, "peak_rss_mb": 150.0, "size_mb": 11.0, "error": None}
    assert "mask AP" not in speed_table({"results": [row]})
    assert "mask AP" in speed_table({"results": [row | {"mask_ap": 57.4}]})
    report = {"results": [row], "device": {"cpu": {"model": "x", "arch": "x86_64"}},
              "settings": {"images": ["a.png"], "warmup": 1, "runs": 2, "data": None}}
    device = device_tables(report)[0]
    assert device.title == "Device" and all(device.headers)


def test_the_report_reads_on_a_phone(tmp_path):
    """Before: no viewport tag; at 390 px the plots shrank to unreadable and the tables overflowed the page. Now,
    in Chromium at a phone's width, the page itself never scrolls sideways: wide tables and plots scroll in their
    own box, and the plots keep a readable width. The report is the one committed from a real run, written anew."""
    import json as _json

    from cmlite.apps.reports.report import write_report
    from tests.conftest import REPO

    chromium = need("chromium", "chromium")
    report = _json.loads((REPO / "benchmarks" / "reports" / "epyc-avx2-2cores" / "report.json").read_text())
    write_report(report, tmp_path / "r", log=lambda m: None)
    page = (tmp_path / "r" / "report.html").read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    probe = """<script>
      const d = document.documentElement, box = e => e.getBoundingClientRect();
      document.body.setAttribute("data-probe", JSON.stringify({
        page: d.scrollWidth, view: window.innerWidth,
        svgs: [...document.querySelectorAll("figure svg")].map(s => box(s).width),
        figures: [...document.querySelectorAll("figure")].map(f => box(f).width),
        tables: [...document.querySelectorAll("table")].map(t => [t.parentElement.className, box(t.parentElement).width])}));
    </script></body>"""
    (tmp_path / "probe.html").write_text(page.replace("</body>", probe))
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--window-size=390,844", "--dump-dom",
                          (tmp_path / "probe.html").as_uri()], capture_output=True, text=True, timeout=120, check=True)
    found = re.search(r'data-probe="([^"]+)"', dom.stdout)
    assert found, dom.stdout[-500:]
    m = _json.loads(found.group(1).replace("&quot;", '"'))
    # headless Chromium's narrowest window is 500 px, within the phone rules (up to 760 px)
    assert m["view"] <= 520 and m["page"] <= m["view"], m  # nothing pushes the page wider than the phone
    assert m["svgs"] and min(m["svgs"]) >= 700, m["svgs"]  # plots at a readable size ...
    assert max(m["figures"]) <= m["view"], m["figures"]  # ... scrolled within their figure
    assert m["tables"] and all(cls == "scroll" and w <= m["view"] for cls, w in m["tables"]), m["tables"]


def test_speed_accuracy_names_do_not_overlap():
    """Before: the names of neighbouring points (the demo's rows, many at one AP) were drawn over each other."""
    from cmlite.apps.reports.report_plots import pyplot, place_labels

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(12, 4.2))
    pts = [(15.2, 57.6), (16.0, 57.3), (30.1, 57.4), (41.1, 57.4), (46.2, 57.4), (53.1, 57.4), (53.7, 57.4),
           (54.0, 57.4), (57.5, 57.4), (67.7, 57.4)]  # the README's demo table
    ax.scatter(*zip(*pts))
    ax.set_ylim(56.2, 58.6)
    notes = place_labels(ax, [(f"tflite-int8-{i} (2 thr)", p) for i, p in enumerate(pts)])
    renderer = fig.canvas.get_renderer()
    boxes = [a.get_window_extent(renderer) for a in notes]
    assert len(boxes) == len(pts)
    assert not [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
    plt.close(fig)


def test_the_merged_threads_plot_names_every_model_and_shows_the_top_point():
    """Before: the merged report's legend came from the last device only (a model it lacked, tflite-int8, was not
    named) and the fastest point sat on the clipped top edge."""
    from cmlite.apps.reports.report_plots import threads_plot

    def row(model, threads, fps):
        return {"model": model, "target": model.split("-")[0], "precision": model.split("-")[1], "threads": threads,
                "size": None, "fps": fps, "error": None}

    pi = {"device": {"name": "pi5"}, "results": [row("onnx-int8", t, 10.0 * t) for t in (1, 2)]
          + [row("tflite-int8", t, 30.0 * t) for t in (1, 2)]}
    xeon = {"device": {"name": "xeon"}, "results": [row("onnx-int8", t, 20.0 * t) for t in (1, 2)]}
    svg = threads_plot([pi, xeon])
    assert "tflite-int8" in svg and "onnx-int8" in svg


def test_a_merged_report_keeps_the_live_clip_and_tells_same_named_devices_apart(tmp_path):
    """Before: `cmlite report bench1 out/report --out rep2` dropped the demo's live-clip section (no <video>, no
    `live` key), and two runs on one machine were named "vm, vm #2"."""
    from cmlite.apps.cli import main as cli
    from tests.conftest import REPO

    base = json.loads((REPO / "benchmarks" / "reports" / "epyc-avx2-2cores" / "report.json").read_text())
    base["device"]["name"] = "vm"
    clip = tmp_path / "live.webm"
    clip.write_bytes(b"\x1aE\xdf\xa3 not really a video, carried as it is")
    demo = dict(base, live={"model": "openvino-int8", "clip": str(clip), "frames": 150, "fps": 44.0,
                            "latency_ms": {"p50": 20.0, "p90": 25.0}, "running": "throughput (auto, remembered)",
                            "threads": 2, "source": "video clip.avi"})
    demo["settings"] = {**base["settings"], "created": "2026-12-06T21:05:00+00:00"}
    bench = dict(base, settings={**base["settings"], "created": "2026-12-06T22:40:00+00:00"})
    for name, rep in (("demo", demo), ("bench1", bench)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(rep))
    assert cli(["report", str(tmp_path / "bench1"), str(tmp_path / "demo"), "--out", str(tmp_path / "rep2")]) == 0
    m = json.loads((tmp_path / "rep2" / "report.json").read_text())
    assert [r["device"]["name"] for r in m["reports"]] == ["vm, 2026-12-06 22:40 UTC", "vm, 2026-12-06 21:05 UTC"]
    assert "live" not in m["reports"][0] and m["reports"][1]["live"]["clip"] == str(clip)
    page = (tmp_path / "rep2" / "report.html").read_text()
    assert page.count("<video") == 1 and "data:video/webm;base64," in page and "44.0 fps with openvino-int8" in page
    assert "### Live: the camera app on a clip" in (tmp_path / "rep2" / "report.md").read_text()


def test_one_slow_row_puts_the_speed_accuracy_plot_on_a_log_axis():
    """Before: PyTorch's 1123 ms point stretched the demo report's speed/AP axis and the other names piled up near
    0-100 ms. Latencies more than 8x apart go on a log axis with plain ms ticks; close ones stay linear."""
    from cmlite.apps.reports.report_plots import front_plot, latency_scale

    assert latency_scale([15.4, 31.1, 43.1, 1123.0]) == "log" and latency_scale([15.4, 31.1, 60.0]) == "linear"
    rows = [{"model": m, "threads": 2, "size": None, "latency_ms": {"p50": p50}, "mask_ap": 57.4, "error": None}
            for m, p50 in (("pytorch", 1123.0), ("onnx-int8", 31.1), ("openvino-int8", 14.6), ("tflite-int8", 15.4))]
    svg = front_plot([{"device": {"name": "vm"}, "results": rows}])
    ticks = re.findall(r">([^<>]{1,8})</text>", svg)
    assert "log scale" in svg and {"20", "50", "100", "1000"} <= set(ticks)  # plain ms ticks, not powers of ten
