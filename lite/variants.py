"""CenterMask-Lite variants as data (spec section 1), timm-style: one dict, one builder."""
from __future__ import annotations

from dataclasses import dataclass, replace

from cmlite.runtimes.errors import SettingsError


@dataclass(frozen=True)
class Variant:
    name: str
    stem_ch: tuple[int, int, int]
    stage_conv_ch: tuple[int, int, int, int]
    stage_out_ch: tuple[int, int, int, int]
    layers_per_block: int
    blocks_per_stage: tuple[int, int, int, int]
    depthwise: bool = False
    fpn_ch: int = 128
    tower_convs: int = 2  # FCOS cls/box tower depth
    mask_convs: int = 2  # SAG-Mask convs before spatial attention
    maskiou: bool = True
    num_classes: int = 80
    test_size: tuple[int, int] = (600, 1000)  # official test resize: short side, long-side cap

    def with_(self, **changes) -> "Variant":
        return replace(self, **changes)


_V19 = dict(stem_ch=(64, 64, 128), stage_conv_ch=(128, 160, 192, 224), stage_out_ch=(256, 512, 768, 1024))
_SLIM = dict(stage_conv_ch=(64, 80, 96, 112), stage_out_ch=(112, 256, 384, 512))

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant("V-19-eSE", **_V19, layers_per_block=3, blocks_per_stage=(1, 1, 1, 1)),
        Variant("V-19-slim-eSE", stem_ch=(64, 64, 128), **_SLIM, layers_per_block=3, blocks_per_stage=(1, 1, 1, 1)),
        Variant("V-19-slim-dw-eSE", stem_ch=(64, 64, 64), **_SLIM, layers_per_block=3,
                blocks_per_stage=(1, 1, 1, 1), depthwise=True),
        Variant("V-39-eSE", **_V19, layers_per_block=5, blocks_per_stage=(1, 1, 2, 2)),
        # The full (non-Lite) CenterMask V-57-eSE: 256-channel FPN, 4-conv towers and mask head.
        Variant("V-57-eSE", **_V19, layers_per_block=5, blocks_per_stage=(1, 1, 4, 3),
                fpn_ch=256, tower_convs=4, mask_convs=4, test_size=(800, 1333)),
    ]
}
DEFAULT_VARIANT = "V-19-eSE"


def get_variant(name: str) -> Variant:
    key = name.strip()
    for v in VARIANTS.values():  # accept "V-19-eSE", "v19_ese", "lite_V19_eSE", ...
        if _norm(v.name) == _norm(key):
            return v
    raise SettingsError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")


def _norm(s: str) -> str:
    s = s.lower().replace("lite", "").replace("centermask", "")
    return "".join(c for c in s if c.isalnum())
