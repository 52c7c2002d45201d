"""Loading checkpoints: official layout, bare state_dicts, extras tolerated; bad files refused in one line."""
from __future__ import annotations

import os

import pytest
import torch

from cmlite import lite
from cmlite.runtimes.errors import CheckpointError

from .conftest import CKPT


@pytest.fixture(scope="module")
def official_sd():
    return torch.load(CKPT, map_location="cpu", weights_only=True)["model"]


def _same_weights(model, sd) -> bool:
    got = model.state_dict()
    return all(torch.equal(got[k], v) for k, v in sd.items())


def test_official_file_loads(official_sd):
    model = lite.load_model(CKPT)
    assert model.variant.name == "V-19-eSE" and model.variant.maskiou
    assert _same_weights(model, official_sd)
    assert model.class_names[0] == "person" and model.category_ids[-1] == 90


def test_bare_state_dict_and_tolerated_extras(tmp_path, official_sd):
    bare = tmp_path / "bare.pth"
    torch.save(official_sd, bare)
    assert _same_weights(lite.load_model(bare), official_sd)
    training = tmp_path / "training.pth"
    sd = dict(official_sd, pixel_mean=torch.zeros(3, 1, 1), pixel_std=torch.ones(3, 1, 1))
    torch.save({"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.01}]}, "iteration": 90000,
                "scheduler": {"last_epoch": 3}}, training)
    assert _same_weights(lite.load_model(training), official_sd)
    ddp = tmp_path / "ddp.pth"
    torch.save({"model": {f"module.{k}": v for k, v in official_sd.items()}}, ddp)
    assert _same_weights(lite.load_model(ddp), official_sd)


def test_saved_checkpoint_round_trips_with_metadata(tmp_path):
    v = lite.get_variant("V-19-slim-eSE").with_(num_classes=2)
    model = lite.CenterMaskLite(v, class_names=("disc", "ring"), category_ids=(7, 9),
                                config=lite.CenterMaskLite(v).config.with_(min_size=320, max_size=533))
    path = lite.save_checkpoint(model, tmp_path / "trained.pth", iteration=10)
    assert [p.name for p in tmp_path.iterdir()] == ["trained.pth"]  # no temporary file left
    loaded = lite.load_model(path)
    assert loaded.variant == v and _same_weights(loaded, model.state_dict())
    assert loaded.class_names == ("disc", "ring") and loaded.category_ids == (7, 9)
    assert (loaded.config.min_size, loaded.config.max_size) == (320, 533)
    raw = torch.load(path, weights_only=True)  # the official layout, readable by the official loader
    assert set(raw) == {"model", "cmlite", "iteration"} and set(raw["model"]) == set(model.state_dict())


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    _Payload.marker = str(marker)
    path = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "extra": _Payload()}, path)
    with pytest.raises(CheckpointError, match=r"refused to load .*evil.pth.*posix.system|refused.*system"):
        lite.load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_damaged_files_give_one_line(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(CKPT.read_bytes()[:200_000] if content is None else content)
    with pytest.raises(CheckpointError) as e:
        lite.load_model(path)
    assert "not a readable PyTorch checkpoint" in str(e.value) and "\n" not in str(e.value)


def test_missing_and_non_tensor_files(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        lite.load_model(tmp_path / "nope.pth")
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="holds a list"):
        lite.load_model(path)
    path = tmp_path / "strs.pth"
    torch.save({"model": {"a": "b"}}, path)
    with pytest.raises(CheckpointError, match="not tensors"):
        lite.load_model(path)
