"""What a new user ran into (issue 10): wrong ids, lost work, empty folders, tracebacks and unclear messages.
Each test failed before its fix."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from cmlite.apps.cli import main

from .conftest import CKPT, IMAGE, one_line_error, run_torch_free


@pytest.fixture(scope="module")
def three_images(tmp_path_factory):
    """Two val images of the default model's data and one that does not decode, in one folder."""
    from cmlite.calibration.synth import generate

    d = tmp_path_factory.mktemp("data") / "d"
    generate(d, 0, 2, 320, 0, progress=False)
    folder = d / "mixed"
    folder.mkdir()
    shutil.copy(d / "val" / "000001.png", folder / "000001.png")
    shutil.copy(d / "val" / "000002.png", folder / "zzz.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return folder


# -- results -------------------------------------------------------------------------------------------------

def test_a_bad_image_does_not_lose_the_batch(three_images, default_onnx, tmp_path, capsys):
    """Before: the batch stopped at broken.png; pictures drawn so far stayed, the JSON was never written."""
    out, vis = tmp_path / "r.json", tmp_path / "vis"
    assert main(["predict", str(three_images), "--model", str(default_onnx), "--json", str(out),
                 "--save-vis", str(vis)]) == 1
    err = capsys.readouterr().err
    assert "broken.png: skipped: cannot decode image" in err and "1 of 3 images could not be read or run and was skipped" in err
    res = json.loads(out.read_text())
    names = {Path(r["file_name"]).name for r in res}
    assert names == {"000001.png", "zzz.png"}
    # 000001.png and zzz.png both had image_id 1
    ids = {Path(r["file_name"]).name: r["image_id"] for r in res}
    assert ids["000001.png"] != ids["zzz.png"]
    assert sorted(p.name for p in vis.iterdir()) == ["000001.png", "zzz.png"]


def test_same_name_in_two_folders_gets_two_ids(three_images, default_onnx, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    shutil.copy(three_images / "000001.png", a / "000001.png")
    shutil.copy(three_images / "zzz.png", b / "000001.png")
    out = tmp_path / "r.json"
    assert main(["predict", str(a), str(b), "--model", str(default_onnx), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    by_file = {r["file_name"]: r["image_id"] for r in res}
    assert len(by_file) == 2 and len(set(by_file.values())) == 2


# -- folders and files ---------------------------------------------------------------------------------------

def test_failed_runs_leave_no_empty_folders(three_images, default_onnx, tmp_path, capsys):
    vis = tmp_path / "new" / "vis"
    assert main(["predict", str(three_images / "broken.png"), "--model", str(default_onnx),
                 "--save-vis", str(vis)]) == 2
    assert not (tmp_path / "new").exists()  # before: made, then the image failed to decode

    from cmlite.converters.folders import output_dir

    keep = tmp_path / "keep"
    keep.mkdir()
    with pytest.raises(KeyboardInterrupt):
        with output_dir(keep / "a" / "b"):
            raise KeyboardInterrupt
    assert list(keep.iterdir()) == []  # made by the block, removed; the folder that was there stays


def test_interrupted_convert_leaves_no_folder(tmp_path):
    from cmlite import lite
    from cmlite.converters.convert import convert

    def interrupt(message):
        if "exporting" in message:
            raise KeyboardInterrupt

    out = tmp_path / "models" / "run1"
    with pytest.raises(KeyboardInterrupt):
        convert(lite.load_model(), out, ["onnx"], ["fp32"], log=interrupt)
    assert not (tmp_path / "models").exists()


def test_outputs_that_name_an_existing_file(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    line = one_line_error(capsys, ["predict", str(IMAGE), "--save-vis", str(f)])
    assert "--save-vis" in line and "is a file" in line  # before: FileExistsError
    assert "is a file" in one_line_error(capsys, ["convert", "--out", str(f)])
    assert "is a file" in one_line_error(capsys, ["data", "synth", "--out", str(f), "--train", "1", "--val", "0"])
    assert "is a folder" in one_line_error(capsys, ["predict", str(IMAGE), "--json", str(tmp_path)])


def test_vis_thresh_out_of_range(capsys):
    line = one_line_error(capsys, ["predict", str(IMAGE), "--vis-thresh", "5"])
    assert "--vis-thresh 5.0: give a score in [0, 1]" in line


# -- manifests -----------------------------------------------------------------------------------------------

def _edited(default_onnx, tmp_path, edit) -> Path:
    folder = tmp_path / default_onnx.name
    shutil.copytree(default_onnx, folder)
    m = json.loads((folder / "manifest.json").read_text())
    edit(m)
    (folder / "manifest.json").write_text(json.dumps(m))
    return folder


@pytest.mark.parametrize("edit, words", [
    (lambda m: m["pipeline"].update(min_size=-5), "min_size -5"),  # before: a crash deep in resize
    (lambda m: m["pipeline"].update(score_thresh=3), "score_thresh 3"),
    (lambda m: m["model"].update(class_names=m["model"]["class_names"][:-1]), "class counts disagree"),
    (lambda m: m.update(target="coreml"), "this cmlite runs onnx, openvino, tflite"),
])
def test_bad_manifests_give_one_line(default_onnx, tmp_path, capsys, edit, words):
    folder = _edited(default_onnx, tmp_path, edit)
    assert words in one_line_error(capsys, ["predict", str(IMAGE), "--model", str(folder)])


@pytest.mark.parametrize("name, claim", [("onnx-fp32", "fp16"), ("onnx-fp16", "fp32"), ("openvino-fp32", "fp16"),
                                         ("openvino-fp16", "fp32"), ("tflite-fp32", "fp16"), ("tflite-fp16", "int8")])
def test_precision_that_does_not_match_the_graphs(converted, tmp_path, name, claim):
    """Each backend reads what its graphs hold (ONNX initializers, OpenVINO constants, TFLite tensors)."""
    from cmlite import runtimes
    from cmlite.runtimes.errors import CmliteError

    folder = tmp_path / name
    folder.mkdir()
    for f in converted[name].iterdir():  # the graphs hard-linked (a symlink out of the folder is refused), the manifest edited
        if f.name != "manifest.json":
            os.link(f, folder / f.name)
    m = json.loads((converted[name] / "manifest.json").read_text())
    m["precision"] = claim
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CmliteError, match=f"the manifest says {claim} but the graphs hold"):
        runtimes.load(folder)
    runtimes.load(converted[name])  # the true claim loads


def test_model_pointing_at_a_graph_file(default_onnx, capsys):
    line = one_line_error(capsys, ["predict", str(IMAGE), "--model", str(default_onnx / "dense.onnx")])
    assert "is a graph file" in line and f"give {default_onnx}" in line  # before: "is not valid JSON"


# -- messages ------------------------------------------------------------------------------------------------

def test_damaged_checkpoint_message_is_not_cut_mid_word(tmp_path, capsys):
    import torch

    bad = tmp_path / "random.pth"
    bad.write_bytes(bytes(range(256)) * 40)
    line = one_line_error(capsys, ["predict", str(IMAGE), "--weights", str(bad)])
    cause = re.search(r"\((\w+): (.*)\)$", line).group(2)
    try:
        torch.load(bad, weights_only=True)
    except Exception as e:  # noqa: BLE001  (whatever torch raises for it)
        full_words = str(e).strip().splitlines()[0].split()
    words = cause.split()
    if words[-1] == "...":
        words = words[:-1]
    assert words == full_words[:len(words)]  # whole words, cut only between them


def test_synth_hint_names_the_flag(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    assert "--overwrite" in one_line_error(capsys, ["data", "synth", "--out", str(tmp_path / "d"), "--train", "1",
                                                    "--val", "0"])


def test_version(capsys):
    from cmlite.runtimes import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"cmlite {__version__}"


def test_every_option_has_help_and_states_its_default():
    import argparse

    from cmlite.apps.cli import build_parser

    missing = []

    def walk(parser, prefix):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    walk(sp, f"{prefix} {name}")
            elif a.option_strings and a.dest not in ("help", "version"):
                if not a.help:
                    missing.append(f"{prefix} {a.option_strings[0]}: no help")
                elif a.default not in (None, False) and "default" not in a.help:
                    missing.append(f"{prefix} {a.option_strings[0]}: default {a.default!r} not stated")
                elif a.dest in ("min_size", "max_size") and a.default is None:  # the model's own: say both kinds
                    want = ("320", "600") if a.dest == "min_size" else ("533", "1000")
                    if not all(f"{v} for the" in " ".join(a.help.split()) for v in want):
                        missing.append(f"{prefix} {a.option_strings[0]}: the default model's and Lite's sizes")
            elif not a.option_strings and not a.help:
                missing.append(f"{prefix} {a.dest}: no help")

    walk(build_parser(), "cmlite")
    assert not missing, missing


@pytest.mark.parametrize("argv, words", [
    (["predict", str(IMAGE)], 'the embedded default model (no --model given) needs PyTorch'),
    (["eval", "--data", "a.json", "--images", "."], 'the embedded default model (no --model given) needs PyTorch'),
    (["parity", str(IMAGE), "--weights", str(CKPT), "--model", "m"], "cmlite parity"),
    (["demo", "--out", "o"], 'pip install "cmlite[all]"'),
    (["convert", "--out", "o"], 'pip install "cmlite[convert]"'),  # the README's extra, not cmlite[torch]
])
def test_without_torch_one_line_says_what_to_install(argv, words):
    res = run_torch_free(f"""
        from cmlite.apps.cli import main
        sys.exit(main({argv!r}))
    """)
    err = res.stderr.strip()
    assert res.returncode == 2 and "Traceback" not in err and err.count("\n") == 0, err[-1500:]
    assert words in err and "pip install" in err


def test_parity_finishes_the_good_inputs(three_images, default_onnx, tmp_path, capsys):
    """A bad image or a model folder that does not load is skipped and named; the rest is compared."""
    out = tmp_path / "p.json"
    assert main(["parity", str(three_images / "000001.png"), str(three_images / "broken.png"), "--weights", "default",
                 "--model", str(tmp_path / "missing"), "--model", str(default_onnx), "--json", str(out)]) == 1
    err = capsys.readouterr().err
    assert "broken.png: skipped" in err and "missing: skipped" in err and "2 input(s) skipped" in err
    report = json.loads(out.read_text())["pairs"]
    assert len(report) == 1 and report[0]["model"] == str(default_onnx) and report[0]["matched"] > 0


def test_eval_names_missing_images_before_it_starts(three_images, default_onnx, tmp_path, capsys):
    ann = three_images.parent / "annotations" / "instances_val.json"
    line = one_line_error(capsys, ["eval", "--model", str(default_onnx), "--data", str(ann), "--images",
                                   str(three_images)])
    assert "1 of the 2 images instances_val.json names are not in" in line and "000002.png" in line


def test_eval_refuses_a_dataset_whose_ids_name_other_classes(three_images, default_onnx, tmp_path, capsys):
    """A model whose ids 1..8 are other classes than the dataset's 1..8 scored a meaningless AP near 0."""
    ann = json.loads((three_images.parent / "annotations" / "instances_val.json").read_text())
    names = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"]
    ann["categories"] = [{**c, "name": names[i]} for i, c in enumerate(ann["categories"])]
    other = tmp_path / "coco_names.json"
    other.write_text(json.dumps(ann))
    line = one_line_error(capsys, ["eval", "--model", str(default_onnx), "--data", str(other), "--images",
                                   str(three_images.parent / "val")])
    assert "the model's classes are not the dataset's" in line and "1: 'disc' vs 'person'" in line


def test_counts_agree_with_their_nouns():
    """Before: "1 threads", "converted 1 models", "1 of 2 images ... were"."""
    from cmlite.apps.camera.overlay import panel_lines
    from cmlite.apps.table import plural

    assert [plural(n, "thread") for n in (0, 1, 2)] == ["0 threads", "1 thread", "2 threads"]
    assert plural("all", "thread") == "all threads" and plural(1, "thread count") == "1 thread count"
    live = {"backend": "onnx", "precision": "int8", "input": "320x448", "threads": 1, "cpu": "x", "dropped": 0,
            "source": "synth"}
    assert "1 thread" in panel_lines(live)[2] and "1 threads" not in panel_lines(live)[2]


@pytest.mark.parametrize("mode", ["sequential", "overlap"])
def test_an_image_a_graph_refuses_is_skipped_in_one_line(mode, default_models, three_images, tmp_path, capsys,
                                                        monkeypatch):
    """A runtime that refuses one input (OpenVINO on a 32-pixel side, as before inputs were padded to two steps)
    costs that image one line; the images after it are still segmented, in either mode."""
    import cv2

    import cmlite.runtimes.preprocess as pre

    monkeypatch.setattr(pre, "MIN_STEPS", 1)  # the old padding: OpenVINO's MaxPool refuses the 1-pixel map
    thin = tmp_path / "thin.png"
    cv2.imwrite(str(thin), cv2.resize(cv2.imread(str(IMAGE)), (10000, 100)))
    images = [str(three_images / "000001.png"), str(thin), str(three_images / "zzz.png")]
    assert main(["predict", "--model", str(default_models["openvino-fp32"]), *images, "--mode", mode]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "thin.png: skipped: graph 1 failed on a 1x3x32x544 input on openvino" in err
    assert "000001.png: " in out and "zzz.png: " in out and "1 of 3 images could not be read or run" in err


@pytest.mark.parametrize("argv", [
    ["camera", "--source", "synth", "--headless", "--frames", "2", "--stats", "{ro}/run.json"],
    ["camera", "--source", "synth", "--headless", "--frames", "2", "--record", "{ro}/run.webm"],
    ["predict", str(IMAGE), "--json", "{ro}/results.json"],
    ["predict", str(IMAGE), "--save-vis", "{ro}/vis"],
    ["convert", "--targets", "onnx", "--out", "{ro}/models"],
])
def test_outputs_on_a_read_only_file_system_are_refused_before_the_run(argv, read_only_dir, capsys):
    """Before: OpenCV's warnings, then `OSError: [Errno 30] Read-only file system` mid-run, the stats lost."""
    line = one_line_error(capsys, [a.replace("{ro}", str(read_only_dir)) for a in argv])
    assert f"cannot write in {read_only_dir}" in line and "writable" in line, line


def test_stats_that_cannot_be_written_at_the_end_go_to_standard_output(read_only_dir, capsys):
    """A --stats file that became unwritable during the run (a full disk, a folder gone read-only): one line,
    and the run's numbers on standard output."""
    from cmlite.apps.camera.loop import CameraOptions, write_stats

    logs = []
    summary = {"frames": 3, "fps_mean": 12.5}
    write_stats(read_only_dir / "run.json", summary, CameraOptions(log=logs.append))
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 3 and "Read-only file system" in out["stats_error"]
    assert logs == [f"cannot write --stats {read_only_dir / 'run.json'} (Read-only file system): the stats follow "
                    f"on standard output"]


def test_eval_limit_zero_is_refused(three_images, default_onnx, capsys):
    """Before: `eval --limit 0` evaluated every image."""
    ann = three_images.parent / "annotations" / "instances_val.json"
    line = one_line_error(capsys, ["eval", "--model", str(default_onnx), "--data", str(ann), "--images",
                                   str(three_images.parent / "val"), "--limit", "0"])
    assert "--limit 0: give at least 1 image" in line


@pytest.mark.parametrize("name, runtime", [("onnx-fp32", "ONNX Runtime"), ("openvino-int8", "OpenVINO"),
                                           ("tflite-fp32", "LiteRT")])
def test_a_model_its_runtime_refuses_is_one_line_naming_model_runtime_and_device(name, runtime, tiny_models, tmp_path,
                                                                                   capsys):
    """A graph the runtime cannot load or compile (here cut in half, its manifest's hash made to match, as a runtime
    refuses a graph another version made or a device's plugin cannot take): one line, never a traceback (issue 28:
    OpenVINO's ARM plugin refused the INT8 IR with a many-line C++ check)."""
    import platform

    from cmlite.runtimes.manifest import read_manifest, sha256

    folder = tmp_path / name
    shutil.copytree(tiny_models[name], folder)
    m = read_manifest(folder)
    path = folder / m.graphs["dense"].file
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    m.graphs["dense"].sha256, m.graphs["dense"].bytes = sha256(path), path.stat().st_size
    m.write(folder)
    line = one_line_error(capsys, ["predict", str(IMAGE), "--model", str(folder)])
    assert f"{folder}: {runtime} could not load this {name.replace('-', ' ')} model on CPU ({platform.machine()}): " \
        in line and "make it again" in line, line
