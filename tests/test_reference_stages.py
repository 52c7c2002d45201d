"""The eager model against the official CenterMask2 outputs, stage by stage (reference README tolerances)."""
from __future__ import annotations

import numpy as np
import pytest

from .conftest import box_iou, mask_iou, rel_err

TOL = 1e-4  # "features and logits within about 1e-4 relative to their magnitude"


def test_preprocessing_is_exact(reference, ref_run):
    _, host, dense = ref_run
    pre = host["preprocessed"]
    assert pre.resized_hw == reference["resized_bgr"].shape[:2]
    resized = pre.tensor[0, :, : pre.resized_hw[0], : pre.resized_hw[1]].transpose(1, 2, 0)
    np.testing.assert_array_equal(resized.astype(np.uint8), reference["resized_bgr"])
    np.testing.assert_array_equal(dense["model_input"].numpy(), reference["model_input"])


@pytest.mark.parametrize("stage", ["stage3", "stage4", "stage5"])
def test_backbone_stages(reference, ref_run, stage):
    assert rel_err(ref_run[2]["stages"][stage].numpy(), reference[f"bottom_up.{stage}"]) < TOL


@pytest.mark.parametrize("level", range(5))
def test_fpn_and_fcos_head(reference, ref_run, level):
    dense = ref_run[2]
    assert rel_err(dense["fpn"][level].numpy(), reference[f"fpn.p{level + 3}"]) < TOL
    for name in ("logits", "bbox_reg", "ctrness"):
        assert rel_err(dense[name][level].numpy(), reference[f"fcos.{name}.l{level}"]) < TOL, name


def test_proposals(reference, ref_run):
    p = ref_run[1]["proposals"]
    assert len(p) == len(reference["proposals.scores"]) == 50
    np.testing.assert_array_equal(p.classes, reference["proposals.classes"])
    np.testing.assert_array_equal(p.locations, reference["proposals.locations"])
    assert rel_err(p.boxes, reference["proposals.boxes"]) < TOL
    assert rel_err(p.scores, reference["proposals.scores"]) < TOL


def test_level_assignment_uses_all_pooling_levels(reference, ref_run):
    levels = ref_run[1]["level_assignment"]
    np.testing.assert_array_equal(levels, reference["roi.level_assignment"])
    assert set(levels.tolist()) == {0, 1, 2}


def test_pooled_features(reference, ref_run):
    assert rel_err(ref_run[1]["pooled"], reference["roi.mask_pooler_out"]) < TOL


def test_mask_head(reference, ref_run):
    dense = ref_run[2]
    assert rel_err(dense["sam_out"].numpy(), reference["roi.sam_out"]) < TOL
    assert rel_err(dense["mask_logits"].numpy(), reference["roi.mask_logits"]) < TOL
    assert rel_err(ref_run[1]["mask_probs"], reference["raw.mask_probs"]) < TOL


def test_maskiou_head(reference, ref_run):
    host = ref_run[1]
    assert rel_err(host["maskiou"], reference["roi.maskiou_pred"]) < TOL
    assert rel_err(host["mask_scores"], reference["raw.mask_scores"]) < TOL


def test_final_instances(reference, ref_run):
    inst = ref_run[0]
    assert len(inst) == len(reference["final.scores"])
    np.testing.assert_array_equal(inst.classes, reference["final.classes"])
    assert rel_err(inst.boxes, reference["final.boxes"]) < TOL
    assert rel_err(inst.scores, reference["final.scores"]) < TOL
    assert rel_err(inst.mask_scores, reference["final.mask_scores"]) < TOL
    assert box_iou(inst.boxes, reference["final.boxes"]).min() >= 0.99
    assert mask_iou(inst.masks, reference["final.masks"]).min() >= 0.99
    assert inst.masks.shape == reference["final.masks"].shape and inst.masks.dtype == bool
