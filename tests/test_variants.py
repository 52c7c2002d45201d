"""Every variant builds, has the official keys/shapes in the official order, and the spec's size."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cmlite import lite
from cmlite.lite.checkpoint import detect_variant
from cmlite.runtimes.errors import CheckpointError, CmliteError

from .conftest import REFERENCE

KEY_FILES = {
    "V-19-eSE": "keys_lite_V19_eSE.txt",
    "V-19-slim-eSE": "keys_lite_V19_slim_eSE.txt",
    "V-19-slim-dw-eSE": "keys_lite_V19_slim_dw_eSE.txt",
    "V-39-eSE": "keys_lite_V39_eSE.txt",
}


def read_keys(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in (REFERENCE / KEY_FILES[name]).read_text().splitlines():
        key, shape, kind = line.split("\t")
        rows.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip()), kind))
    return rows


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(KEY_FILES))
def test_state_dict_equals_official_key_list(name):
    model = lite.build_model(name)
    rows = read_keys(name)
    sd = model.state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == [(k, s) for k, s, _ in rows]
    params = {k for k, _ in model.named_parameters()}
    assert params == {k for k, _, kind in rows if kind == "param"}  # FrozenBN statistics are buffers
    assert n_params(model) == sum(int(np.prod(s)) for _, s, kind in rows if kind == "param")


def test_lite_v19_parameter_count_matches_spec():
    model = lite.build_model("V-19-eSE")
    assert round(n_params(model) / 1e6, 1) == 20.1
    maskiou = sum(p.numel() for p in model.roi_heads.maskiou_head.parameters())
    assert round((n_params(model) - maskiou) / 1e6, 1) == 12.3
    assert round(maskiou / 1e6, 2) == 7.85


def test_full_v57_model_builds_and_runs():
    model = lite.build_model("V-57-eSE")
    sd = model.state_dict()
    assert sd["backbone.fpn_output3.weight"].shape == (256, 256, 3, 3)
    assert "backbone.bottom_up.stage4.OSA4_4.concat.OSA4_4_concat/conv.weight" in sd
    assert "proposal_generator.fcos_head.cls_tower.10.weight" in sd  # 4 convs: indices 0,3,6,9 (+GN)
    assert "roi_heads.mask_head.mask_fcn4.weight" in sd
    with torch.inference_mode():
        logits, reg, ctr, feats = model.dense(torch.zeros(1, 3, 64, 96))
    assert [tuple(x.shape[-2:]) for x in logits] == [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    assert feats[0].shape[1] == 256
    assert (model.config.min_size, model.config.max_size) == (800, 1333)  # the full model's test size
    assert lite.build_model("V-39-eSE").config.min_size == 600


@pytest.mark.parametrize("name", list(lite.VARIANTS))
def test_variant_detected_from_weights(name):
    sd = lite.build_model(name).state_dict()
    assert detect_variant(sd).name == name
    no_iou = {k: v for k, v in sd.items() if not k.startswith("roi_heads.maskiou_head.")}
    v = detect_variant(no_iou)
    assert v.name == name and not v.maskiou


def test_num_classes_detected_and_model_runs():
    v = lite.get_variant("V-19-slim-dw-eSE").with_(num_classes=3)
    model = lite.CenterMaskLite(v, class_names=("a", "b", "c"))
    assert detect_variant(model.state_dict()).num_classes == 3
    with torch.inference_mode():
        prob, iou = model.mask_branch(torch.zeros(2, 128, 14, 14), torch.eye(3)[[0, 2]])
    assert prob.shape == (2, 1, 28, 28) and iou.shape == (2, 3)


def test_mismatched_weights_name_the_closest_variant_and_keys():
    sd = lite.build_model("V-39-eSE").state_dict()
    sd.pop("backbone.bottom_up.stage5.OSA5_2.ese.fc.bias")
    sd["roi_heads.mask_head.extra.weight"] = torch.zeros(1)
    sd["backbone.fpn_output3.bias"] = torch.zeros(64)
    with pytest.raises(CheckpointError) as e:
        detect_variant(sd, "x.pth")
    msg = str(e.value)
    assert "resembles V-39-eSE" in msg and "OSA5_2.ese.fc.bias" in msg and "extra.weight" in msg
    assert "fpn_output3.bias" in msg and "\n" not in msg


def test_variant_names_are_forgiving():
    assert lite.get_variant("lite_V19_slim_dw_eSE").name == "V-19-slim-dw-eSE"
    with pytest.raises(CmliteError, match="known: V-19-eSE"):
        lite.get_variant("V-99")


def test_compute_and_parameters_match_the_spec():
    """benchmarks/count_macs.py against the spec's figures for Lite V-19-eSE at 608x800: 49.2 GMACs dense
    (backbone 39.9, stage 2 ~17.4, FPN 2.2, FCOS head 7.0), 0.079 + 0.044 GMACs per RoI, 20.1M parameters."""
    import importlib.util

    from .conftest import REPO

    spec = importlib.util.spec_from_file_location("count_macs", REPO / "benchmarks" / "count_macs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.count("V-19-eSE", (608, 800))
    assert c["dense"] == pytest.approx(49.2, abs=0.15)  # 49.1: the spec's parts sum to 49.1 too
    for part, want in (("backbone", 39.9), ("stage2", 17.4), ("fpn", 2.2), ("head", 7.0)):
        assert c[part] == pytest.approx(want, abs=0.06), part
    assert c["mask"] == pytest.approx(0.079, abs=5e-4) and c["maskiou"] == pytest.approx(0.044, abs=5e-4)
    assert c["params_m"] == pytest.approx(20.1, abs=0.05)
