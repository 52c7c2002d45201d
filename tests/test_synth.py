"""calibration.synth: the synthetic COCO shapes dataset (determinism, masks vs pixels, sizes, COCO, safe writes)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cmlite.runtimes.errors import CmliteError
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from cmlite.calibration import synth


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _tight_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


@pytest.fixture(scope="module")
def rendered():
    """40 images at 160 px."""
    return [synth.render(160, synth.image_rng(11, "train", i)) for i in range(1, 41)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    summary = synth.generate(out, n_train=5, n_val=3, size=128, seed=3, progress=False)
    return out, summary


# ----------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = dict(n_train=3, n_val=2, size=96, progress=False)
    synth.generate(tmp_path / "a", seed=7, **kw)
    synth.generate(tmp_path / "b", seed=7, **kw)
    synth.generate(tmp_path / "c", seed=8, **kw)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 3 + 2 + 2 and set(a) == set(b) == set(c)
    assert a == b
    for name in a:  # every image and both annotation files change with the seed
        assert a[name] != c[name], name


def test_image_depends_only_on_seed_split_and_id():
    first, _, _ = synth.render(96, synth.image_rng(5, "val", 4))
    for other in [synth.image_rng(5, "val", 3), synth.image_rng(5, "train", 4), synth.image_rng(6, "val", 4)]:
        synth.render(96, other)  # generating others in between changes nothing
    again, _, _ = synth.render(96, synth.image_rng(5, "val", 4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, synth.render(96, synth.image_rng(5, "train", 4))[0])


# ----------------------------------------------------------------------------------------------- masks


def test_masks_match_id_map_and_are_disjoint(rendered):
    for image, instances, id_map in rendered:
        assert image.shape == (160, 160, 3) and image.dtype == np.uint8
        assert id_map.shape == (160, 160) and id_map.dtype == np.int32
        assert 1 <= len(instances) <= 8
        assert id_map.max() == len(instances) and id_map.min() == 0
        coverage = np.zeros(id_map.shape, np.int32)
        for k, inst in enumerate(instances):
            mask = inst["mask"]
            assert mask.dtype == bool and mask.shape == id_map.shape
            np.testing.assert_array_equal(mask, id_map == k + 1)
            assert 1 <= inst["category_id"] <= len(synth.CLASSES)
            visible = int(mask.sum())  # the drop rule: nothing essentially invisible is annotated
            assert visible >= synth.MIN_VISIBLE_PIXELS
            assert visible >= synth.MIN_VISIBLE_FRACTION * inst["full_area"] - 1e-9
            assert visible <= inst["full_area"]
            coverage += mask
        assert coverage.max() <= 1  # pairwise disjoint
        np.testing.assert_array_equal(coverage > 0, id_map > 0)


def test_pixels_are_painted_exactly_on_the_visible_masks(monkeypatch):
    """With flat colours (one per instance, on a black background) and no photometric changes, the image shows
    instance k exactly where its mask is: occluded parts and dropped instances are not painted."""
    painted = []

    def flat_fill(sil, base, rng):
        painted.append(len(painted) + 1)
        return np.full((*sil.mask.shape, 3), 25.0 * len(painted), np.float32)

    monkeypatch.setattr(synth, "background", lambda size, rng: np.zeros((size, size, 3), np.float32))
    monkeypatch.setattr(synth, "fill_silhouette", flat_fill)
    monkeypatch.setattr(synth, "_photometric", lambda img, rng: img.astype(np.uint8))
    occluded = 0
    for i in range(1, 31):
        painted.clear()
        image, instances, id_map = synth.render(128, synth.image_rng(2, "train", i))
        assert len(painted) == len(instances)
        expected = np.zeros((128, 128, 3), np.uint8)
        for k, inst in enumerate(instances):
            expected[inst["mask"]] = 25 * (k + 1)
            occluded += int(inst["mask"].sum() < inst["full_area"])
        np.testing.assert_array_equal(image, expected)
    assert occluded > 0


def test_occlusion_happens_and_hides_pixels(rendered):
    """Over the batch, instances lose pixels to instances in front of them (later in the list), touching them."""
    occluded = 0
    for _, instances, _ in rendered:
        for i, inst in enumerate(instances):
            if inst["mask"].sum() >= inst["full_area"]:
                continue
            ring = cv2.dilate(inst["mask"].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if any((ring & front["mask"]).any() for front in instances[i + 1:]):
                occluded += 1
    assert occluded >= 5


def _square(x0, y0, side, category_id=1):
    return synth.Silhouette(category_id, x0, y0, np.ones((side, side), bool))


def test_compose_occlusion_by_construction():
    back, front = _square(10, 10, 40), _square(30, 30, 40)
    id_map, keep = synth.compose([back, front], 100)
    assert keep == [0, 1]
    assert (id_map == 1).sum() == 1600 - 400 and (id_map == 2).sum() == 1600
    assert (id_map[30:50, 30:50] == 2).all()

    # mostly hidden (30 % visible) and tiny-and-covered instances are dropped and not drawn at all
    hidden, tiny, cover = _square(0, 0, 20), _square(60, 60, 5), _square(6, 0, 80)
    id_map, keep = synth.compose([hidden, tiny, cover], 100)
    assert keep == [2]
    assert (id_map[0:20, 0:6] == 0).all() and (id_map > 0).sum() == 80 * 80

    # dropping the least visible first can save the one behind it: a (30 %) is behind b (20 %) behind c
    a, b, c = _square(0, 0, 20), _square(6, 0, 20), _square(10, 0, 30)
    id_map, keep = synth.compose([a, b, c], 64)
    assert keep == [0, 2]
    assert (id_map == 1).sum() == 20 * 10

    # the off-image part counts as hidden
    half_out, mostly_out = _square(-20, 10, 40), _square(50, -30, 40)
    id_map, keep = synth.compose([half_out, mostly_out], 64)
    assert keep == [0] and (id_map == 1).sum() == 20 * 40


def test_silhouettes_have_their_topology():
    """Rings have a hole, crescents/stars are concave, bars are thin, discs are convex and solid."""
    rng = np.random.default_rng(0)
    for name in synth.CLASSES:
        cid = synth.CLASSES.index(name) + 1
        for _ in range(40):
            mask = synth.silhouette(cid, 80.0, rng.uniform(0, 6.3), *rng.uniform(50, 70, 2), rng).mask.astype(np.uint8)
            contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
            assert len([h for h in hierarchy[0] if h[3] < 0]) == 1, name  # one piece
            holes = len([h for h in hierarchy[0] if h[3] >= 0])
            assert holes == (1 if name == "ring" else 0), name
            solidity = mask.sum() / cv2.contourArea(cv2.convexHull(contours[0]))
            if name in ("disc", "hexagon", "triangle", "bar"):
                assert solidity > 0.9, (name, solidity)
            if name in ("star", "crescent", "cross"):  # concave
                assert solidity < 0.86, (name, solidity)
            (_, _), (w, h), _ = cv2.minAreaRect(contours[0])
            if name == "bar":
                assert min(w, h) < 0.3 * max(w, h)
            assert 45 <= max(w, h) <= 85, (name, w, h)  # within the 80 px enclosing circle


def test_silhouettes_are_one_piece_at_every_size():
    """Rasterising sharp tips (crescent horns) can leave stray pixels; a silhouette is one 8-connected piece."""
    rng = np.random.default_rng(1)
    for cid in range(1, len(synth.CLASSES) + 1):
        for diameter in np.geomspace(synth.MIN_OBJECT, 120, 100):
            sil = synth.silhouette(cid, diameter, rng.uniform(0, 6.3), *rng.uniform(50, 70, 2), rng)
            assert cv2.connectedComponents(sil.mask.astype(np.uint8), connectivity=8)[0] == 2, (cid, diameter)


def test_size_coverage():
    """Small (< 20 px), large (> 120 px) and very large (box > 1/4 of the image) instances all occur."""
    longest, box_areas, classes = [], [], set()
    for i in range(1, 61):
        _, instances, _ = synth.render(320, synth.image_rng(0, "train", i))
        for inst in instances:
            _, _, w, h = _tight_box(inst["mask"])
            longest.append(max(w, h))
            box_areas.append(w * h)
            classes.add(inst["category_id"])
    longest = np.array(longest)
    assert longest.min() < 20 and longest.max() > 120
    assert (longest < 20).mean() > 0.08 and (longest > 120).mean() > 0.05  # not just one of each
    assert sum(a > 320 * 320 / 4 for a in box_areas) >= 2
    assert classes == set(range(1, len(synth.CLASSES) + 1))


# ----------------------------------------------------------------------------------------------- COCO files


def test_annotations_match_rendered_instances(dataset):
    root, _ = dataset
    for split in synth.SPLITS:
        coco = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
        by_image: dict[int, list[dict]] = {}
        for ann in coco["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
        for entry in coco["images"]:
            image, instances, _ = synth.render(128, synth.image_rng(3, split, entry["id"]))
            np.testing.assert_array_equal(cv2.imread(str(root / split / entry["file_name"])), image)
            anns = by_image.get(entry["id"], [])
            assert len(anns) == len(instances) >= 1
            for ann, inst in zip(anns, instances):
                assert ann["category_id"] == inst["category_id"] and ann["iscrowd"] == 0
                assert isinstance(ann["segmentation"]["counts"], str)
                assert ann["segmentation"]["size"] == [128, 128]
                decoded = mask_util.decode(ann["segmentation"]).astype(bool)
                np.testing.assert_array_equal(decoded, inst["mask"])
                assert ann["bbox"] == _tight_box(inst["mask"])
                assert ann["area"] == float(inst["mask"].sum())
                assert all(isinstance(v, float) for v in ann["bbox"] + [ann["area"]])


def test_coco_loads_and_is_consistent(dataset):
    root, summary = dataset
    for split, n in zip(synth.SPLITS, (5, 3)):
        path = root / "annotations" / f"instances_{split}.json"
        coco = COCO(str(path))
        cats = coco.loadCats(coco.getCatIds())
        assert [(c["id"], c["name"], c["supercategory"]) for c in cats] == \
               [(i + 1, name, "shape") for i, name in enumerate(synth.CLASSES)]
        images = coco.loadImgs(coco.getImgIds())
        assert sorted(im["id"] for im in images) == list(range(1, n + 1))
        for im in images:
            assert (root / split / im["file_name"]).is_file()
            assert int(Path(im["file_name"]).stem) == im["id"] and im["file_name"] == f"{im['id']:06d}.png"
            assert im["height"] == im["width"] == 128
        ann_ids = coco.getAnnIds()
        assert sorted(ann_ids) == list(range(1, len(ann_ids) + 1))
        assert summary[split] == {"images": n, "instances": len(ann_ids)}
        info = json.loads(path.read_text())["info"]
        assert info["seed"] == 3 and info["size"] == 128 and info["images"] == n
        assert info["annotations"] == len(ann_ids) and info["version"] == synth.GENERATOR_VERSION
        assert sorted(p.name for p in (root / split).iterdir()) == [f"{i:06d}.png" for i in range(1, n + 1)]
    assert summary["seconds"] >= 0


# ----------------------------------------------------------------------------------------------- safe writes


def test_refuses_non_empty_folder_and_overwrites_only_a_dataset(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()  # an empty folder is fine
    synth.generate(out, 2, 1, 64, seed=1, progress=False)
    before = _files(out)
    with pytest.raises(CmliteError, match="not empty"):
        synth.generate(out, 2, 1, 64, seed=2, progress=False)
    assert _files(out) == before
    synth.generate(out, 1, 1, 64, seed=2, progress=False, overwrite=True)
    after = _files(out)
    assert after != before and "train/000002.png" not in after

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(CmliteError, match="not empty"):
        synth.generate(other, 1, 0, 64, seed=0, progress=False)
    with pytest.raises(CmliteError, match="refusing to overwrite"):
        synth.generate(other, 1, 0, 64, seed=0, progress=False, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "other"]  # no temporary folder left


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_train=-1), "n_train"),
    (dict(n_val=-2), "n_val"),
    (dict(n_train=0, n_val=0), "both 0"),
    (dict(n_train=1.5), "n_train"),
    (dict(n_train=True), "n_train"),
    (dict(size=63), "size"),
    (dict(size=100.0), "size"),
    (dict(seed=-1), "seed"),
    (dict(seed="0"), "seed"),
])
def test_argument_validation(tmp_path, kwargs, match):
    args = dict(n_train=1, n_val=1, size=64, seed=0, progress=False) | kwargs
    with pytest.raises(CmliteError, match=match):
        synth.generate(tmp_path / "ds", **args)
    assert list(tmp_path.iterdir()) == []


def test_render_and_target_validation(tmp_path):
    with pytest.raises(CmliteError, match="size"):
        synth.render(32, np.random.default_rng(0))
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(CmliteError, match="not a folder"):
        synth.generate(target, 1, 0, 64, seed=0, progress=False)


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    real = synth.render

    def failing(size, rng):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(size, rng)

    monkeypatch.setattr(synth, "render", failing)
    with pytest.raises(KeyboardInterrupt):
        synth.generate(tmp_path / "ds", 4, 1, 64, seed=0, progress=False)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor the temporary folder


def test_folder_filled_during_generation_is_not_replaced(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    real = synth.render

    def render_and_meddle(size, rng):
        out.mkdir(exist_ok=True)
        (out / "notes.txt").write_text("keep me")
        return real(size, rng)

    monkeypatch.setattr(synth, "render", render_and_meddle)
    with pytest.raises(CmliteError, match="filled while"):
        synth.generate(out, 1, 1, 64, seed=0, progress=False)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_success_leaves_no_temporary_folder_and_shows_progress(tmp_path, capsys):
    summary = synth.generate(tmp_path / "nested" / "ds", 2, 1, 64, seed=0, progress=True)
    assert [p.name for p in (tmp_path / "nested").iterdir()] == ["ds"]
    assert sorted(p.name for p in (tmp_path / "nested" / "ds").iterdir()) == ["annotations", "train", "val"]
    assert summary["train"]["images"] == 2 and summary["val"]["images"] == 1
    captured = capsys.readouterr()
    assert "3/3" in captured.err and captured.out == ""
