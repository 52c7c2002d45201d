"""Triton: `cmlite triton export` and `serve` with the real server (NVIDIA's tritonserver from the nvidia-pytriton
wheel, fetched once by the command itself), `triton://` models against the same folders run here, the clean errors,
the key off loopback, and every backend kind's config.pbtxt parsed as Triton's ModelConfig protobuf.

The pip wheel's server has only the Python backend: the models here are exported with --backend python (cmlite's
runtime inside the server). The native backends' configs are checked against the protobuf and the folders'
graphs; running them needs NVIDIA's server images (not run here)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from cmlite import runtimes
from cmlite.apps.cli import main
from cmlite.converters import triton_repo
from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.manifest import read_manifest
from tests.conftest import REPO, one_line_error

MODELS = ("onnx-fp32", "openvino-int8", "tflite-int8")  # the tiny default model: one per CPU target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, repo: Path, *args: str):
        self.grpc = free_port()
        grpc = f"{args[0]}:{self.grpc}" if args else str(self.grpc)  # a bare port by default: loopback
        cmd = [sys.executable, "-m", "cmlite.apps.cli", "triton", "serve", str(repo), "--grpc", grpc, "--http", "off",
               "--metrics", "off", *args[1:]]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        t0 = time.monotonic()
        while not any("Ctrl-C stops it" in ln for ln in self.lines):
            if self.proc.poll() is not None or time.monotonic() - t0 > 300:
                self.stop()
                pytest.fail(f"the server did not start: {self.lines} {self.proc.stderr.read()}")
            time.sleep(0.2)

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"triton://{host}:{self.grpc}/{name}"

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.proc.returncode, self.proc.stderr.read()


@pytest.fixture(scope="module")
def repo(tiny_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("triton") / "repo"
    names = triton_repo.export([tiny_models[m] for m in MODELS], out, backend="python", threads=1, log=lambda m: None)
    assert names == list(MODELS)
    return out


@pytest.fixture(scope="module")
def server(repo):
    s = Served(repo)
    yield s
    code, err = s.stop()
    assert code == 0 and "Triton stopped" in err, err  # SIGTERM: a clean stop, status 0


def _images(tiny_models, n=4) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(Path(tiny_models["val"]).glob("*.png"))[:n]]


def _same(a, b) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    assert (a.classes == b.classes).all()
    assert (a.masks != b.masks).mean() < 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_predictions_through_triton_equal_the_folder_run_here(server, tiny_models, name):
    local = runtimes.load(tiny_models[name], threads=1)
    remote = runtimes.load(server.url(name))
    assert remote.device.startswith(f"triton 127.0.0.1:{server.grpc}/{name}")
    assert remote.class_names == local.class_names and remote.fixed_hw == local.fixed_hw
    found = 0
    for img in _images(tiny_models):
        a, b = local.predict(img), remote.predict(img)
        _same(a, b)  # the same graphs on the server: equal, within float noise
        found += len(a)
    assert found > 0


def test_maskiou_off_and_concurrent_clients(server, tiny_models):
    """Four clients at once (graph 2's requests batched together on the server, split back per client), and graph 2
    asked without the MaskIoU head: each result is its own image's, as run here."""
    local = runtimes.load(tiny_models["onnx-fp32"], threads=1, maskiou=False)
    remote = runtimes.load(server.url("onnx-fp32"), maskiou=False)
    lanes = remote.replicas(4, None)
    images = _images(tiny_models, 8)
    want = [local.predict(img) for img in images]
    got: dict[int, object] = {}

    def client(k: int) -> None:
        for i in range(k, len(images), 4):
            got[i] = lanes[k].predict(images[i])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i, w in enumerate(want):
        _same(w, got[i])
        np.testing.assert_allclose(got[i].mask_scores, got[i].scores)  # no MaskIoU head: the box score


def test_the_commands_take_triton_models(server, tiny_models, tmp_path, capsys):
    url = server.url("openvino-int8")
    image = str(sorted(Path(tiny_models["val"]).glob("*.png"))[0])
    assert main(["predict", image, "--model", url]) == 0
    assert "triton 127.0.0.1" in capsys.readouterr().out
    assert main(["camera", "--model", url, "--source", "synth", "--headless", "--frames", "6", "--mode",
                 "sequential"]) == 0
    assert "6 frames" in capsys.readouterr().out
    assert main(["bench", "--model", url, "--images", image, "--runs", "2", "--warmup", "1", "--throughput", "0",
                 "--threads", "1", "--out", str(tmp_path / "bench")]) == 0
    [row] = json.loads((tmp_path / "bench" / "report.json").read_text())["results"]
    assert row["path"] == url and row["backend_device"].startswith("triton 127.0.0.1") and row["size_mb"] is None


def test_clean_errors(server, capsys, tmp_path):
    image = str(tmp_path / "x.png")
    cv2.imwrite(image, np.zeros((64, 64, 3), np.uint8))
    err = one_line_error(capsys, ["predict", image, "--model", f"triton://127.0.0.1:{free_port()}/onnx-fp32"])
    assert "no Triton server answers" in err and "cmlite triton serve" in err
    err = one_line_error(capsys, ["predict", image, "--model", server.url("nope")])
    assert "no model 'nope'" in err and all(m in err for m in MODELS)
    err = one_line_error(capsys, ["predict", image, "--model", "triton://127.0.0.1/"])
    assert "expected triton://HOST:PORT/NAME" in err
    err = one_line_error(capsys, ["predict", image, "--model", server.url("onnx-fp32"), "--backend", "onnx"])
    assert "runs on its server" in err


def test_a_bare_port_binds_loopback_only_and_asks_no_key(server):
    """The module's server was given a bare port: it answers on 127.0.0.1 without a key, and nowhere else."""
    from tests.test_web import _non_loopback_address

    printed = [ln for ln in server.lines if "triton://" in ln]
    assert printed and all(f"triton://127.0.0.1:{server.grpc}/" in ln and "key=" not in ln for ln in printed)
    assert runtimes.load(server.url("onnx-fp32")).class_names
    ip = _non_loopback_address()
    if ip is None:
        pytest.skip("this machine has no address but loopback")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, server.grpc), timeout=5).close()


def test_the_key_off_loopback(tiny_models, tmp_path, capsys):
    """Bound off loopback, every protocol but health needs the key: none or a wrong one is refused in one line."""
    repo = tmp_path / "repo"
    triton_repo.export([tiny_models["onnx-fp32"]], repo, backend="python", threads=1, log=lambda m: None)
    served = Served(repo, "0.0.0.0", "--key", "test-key-1234")
    try:
        printed = [ln for ln in served.lines if "triton://" in ln]
        assert printed and all(ln.strip().endswith("?key=test-key-1234") for ln in printed)
        assert f"triton://127.0.0.1:{served.grpc}/" not in "".join(printed)  # the machine's name, not loopback
        image = str(sorted(Path(tiny_models["val"]).glob("*.png"))[0])
        err = one_line_error(capsys, ["predict", image, "--model", served.url("onnx-fp32")])
        assert "asks for a key" in err
        err = one_line_error(capsys, ["predict", image, "--model", served.url("onnx-fp32") + "?key=wrong-key-999"])
        assert "refused the key" in err
        assert main(["predict", image, "--model", served.url("onnx-fp32") + "?key=test-key-1234"]) == 0
        os.environ["CMLITE_TRITON_KEY"] = "test-key-1234"
        try:
            assert len(runtimes.load(served.url("onnx-fp32")).class_names) > 0
        finally:
            del os.environ["CMLITE_TRITON_KEY"]
    finally:
        code, err = served.stop()
    assert code == 0, err


def test_serve_refuses_bad_settings(tmp_path, capsys, repo):
    err = one_line_error(capsys, ["triton", "serve", str(tmp_path)])
    assert "not a model repository" in err and "cmlite triton export" in err
    err = one_line_error(capsys, ["triton", "serve", str(repo), "--metrics", "0.0.0.0:9000"])
    assert "metrics take no key" in err
    err = one_line_error(capsys, ["triton", "serve", str(repo), "--grpc", "0.0.0.0:9001", "--key", "short"])
    assert "--key" in err


def _parsed(path: Path) -> pb.ModelConfig:
    return text_format.Parse(path.read_text(), pb.ModelConfig())


def test_configs_of_every_backend_kind_parse_as_model_config(tiny_models, tmp_path):
    repo = tmp_path / "native"
    triton_repo.export([tiny_models["onnx-fp32"], tiny_models["openvino-int8"]], repo, threads=2,
                       log=lambda m: None)
    onnx_dense = _parsed(repo / "onnx-fp32_dense/config.pbtxt")
    assert onnx_dense.platform == "onnxruntime_onnx" and onnx_dense.max_batch_size == 0
    assert list(onnx_dense.input[0].dims) == [1, 3, 128, 160]  # this folder's graph 1 has a fixed input
    assert onnx_dense.parameters["intra_op_thread_count"].string_value == "2"
    assert (repo / "onnx-fp32_dense/1/model.onnx").is_file() and (repo / "onnx-fp32_dense/manifest.json").is_file()
    manifest = read_manifest(tiny_models["onnx-fp32"])
    assert onnx_dense.parameters["cmlite_manifest"].string_value  # what a triton:// client reads
    masks = _parsed(repo / "onnx-fp32_masks/config.pbtxt")
    assert masks.max_batch_size == 4 * manifest.pipeline.post_nms_topk and masks.HasField("dynamic_batching")
    assert [list(i.dims) for i in masks.input] == [list(i["shape"][1:]) for i in manifest.graphs["masks"].inputs]
    assert [o.name for o in masks.output] == ["mask_prob", "maskiou"]
    ov_masks = _parsed(repo / "openvino-int8_masks/config.pbtxt")
    assert ov_masks.backend == "openvino" and ov_masks.max_batch_size == 0 and not ov_masks.HasField(
        "dynamic_batching")  # OpenVINO's backend would fix a batched model's batch at max_batch_size
    assert ov_masks.input[0].dims[0] == -1 and ov_masks.parameters["INFERENCE_NUM_THREADS"].string_value == "2"
    assert {p.name for p in (repo / "openvino-int8_masks/1").iterdir()} == {"model.xml", "model.bin"}
    for cfg in (onnx_dense, masks, ov_masks):
        assert cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU and cfg.instance_group[0].count == 1
    # TensorRT: the engine is built on the server's GPU; its config (written from the folder's manifest) says so
    trt = read_manifest(tiny_models["tensorrt-fp32"])
    cfg = text_format.Parse(triton_repo.config_text(triton_repo.config(trt, "t", "masks", "native")), pb.ModelConfig())
    assert cfg.platform == "tensorrt_plan" and cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    assert cfg.max_batch_size == trt.tensorrt["profiles"]["masks"]["rois"]["max"][0]
    with pytest.raises(CmliteError, match="cmlite build-engine"):
        triton_repo.export([tiny_models["tensorrt-fp32"]], tmp_path / "trt", log=lambda m: None)
    with pytest.raises(CmliteError, match="--backend python"):  # Triton has no LiteRT backend
        triton_repo.export([tiny_models["tflite-fp32"]], tmp_path / "tfl", log=lambda m: None)
    assert not (tmp_path / "tfl").exists() and not (tmp_path / "trt").exists()  # refused before writing
    triton_repo.export([tiny_models["tflite-int8"]], tmp_path / "py", backend="python", log=lambda m: None)
    python = _parsed(tmp_path / "py/tflite-int8_masks/config.pbtxt")
    assert python.backend == "python" and python.max_batch_size > 0  # the Python model pads LiteRT's fixed batch


def test_export_leaves_no_half_model(tiny_models, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    triton_repo.export([tiny_models["onnx-fp32"]], repo, log=lambda m: None)
    with pytest.raises(CmliteError, match="exists"):
        triton_repo.export([tiny_models["onnx-fp32"]], repo, log=lambda m: None)
    calls = []

    def interrupted(src, dst):
        calls.append(dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(triton_repo.shutil, "copy2", interrupted)
    with pytest.raises(KeyboardInterrupt):
        triton_repo.export([tiny_models["openvino-int8"]], repo, log=lambda m: None)
    assert calls and sorted(p.name for p in repo.iterdir()) == ["onnx-fp32_dense", "onnx-fp32_masks"]
    monkeypatch.undo()
    triton_repo.export([tiny_models["openvino-int8"]], repo, overwrite=True, names=["onnx-fp32"], log=lambda m: None)
    assert _parsed(repo / "onnx-fp32_dense/config.pbtxt").backend == "openvino"  # --overwrite: the new one


def test_a_native_export_names_the_backends_the_server_lacks(tiny_models, tmp_path, capsys):
    """Before: export ended "serve it with: cmlite triton serve repo_native", and serve failed with "failed to load
    all models (the whole log: ...)" while the cause, only in the log, was the missing onnxruntime and openvino
    backend libraries of the pip wheel's server. Now export says it cannot be served by that server and why, and
    serve refuses in one line with both ways out, before starting anything; adding to a repository says what it
    now holds."""
    from cmlite.apps.serve import triton_server

    out = tmp_path / "native"
    assert main(["triton", "export", str(tiny_models["onnx-int8"]), str(tiny_models["openvino-int8"]), "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "serve it with" not in printed and "not servable by" in printed
    assert "no onnxruntime (for onnx-int8); openvino (for openvino-int8) backend (it has: python)" in printed
    assert "--backend python" in printed and "--tritonserver" in printed
    err = one_line_error(capsys, ["triton", "serve", str(out), "--grpc", str(free_port()), "--http", "off",
                                  "--metrics", "off"])
    assert "cannot be served here" in err and "no onnxruntime (for onnx-int8)" in err and "--backend python" in err
    assert triton_server.libraries(triton_server.find(fetch=False)) == {"python"}  # the wheel serve fetched
    # the same repository with --backend python added: what it holds now is said
    assert main(["triton", "export", str(tiny_models["onnx-fp32"]), "--backend", "python", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 model written (onnx-fp32); it holds 3 (onnx-fp32, onnx-int8, openvino-int8)" in printed
    log = tmp_path / "triton.log"  # a server's own log saying it: the same words
    log.write_text("E1206 model_lifecycle.cc:654] failed to load 'x_dense' version 1: Invalid argument: unable to "
                   "find backend library for backend 'onnxruntime', try specifying runtime on the model "
                   "configuration.\n")
    from cmlite.apps.serve.triton import log_error

    assert log_error(log).startswith("it has no onnxruntime backend library: export those folders with --backend "
                                      "python")
