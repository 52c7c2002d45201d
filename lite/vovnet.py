"""VoVNetV2 backbone (OSA blocks with eSE), module names as in the official checkpoints."""
from __future__ import annotations

import torch
from torch import nn

from .layers import ESE, conv_unit, dw_sep_unit, seq
from .variants import Variant


class OSABlock(nn.Module):
    def __init__(self, cin: int, stage_ch: int, out_ch: int, n_layers: int, name: str,
                 identity: bool, depthwise: bool):
        super().__init__()
        self.identity = identity
        self.layers = nn.ModuleList()
        self.reduced = depthwise and cin != stage_ch
        ch = cin
        for i in range(n_layers):
            if depthwise:
                self.layers.append(seq(dw_sep_unit(stage_ch, stage_ch, f"{name}_{i}")))
            else:
                self.layers.append(seq(conv_unit(ch, stage_ch, f"{name}_{i}")))
            ch = stage_ch
        if self.reduced:
            self.conv_reduction = seq(conv_unit(cin, stage_ch, f"{name}_reduction_0", k=1))
        self.concat = seq(conv_unit(cin + n_layers * stage_ch, out_ch, f"{name}_concat", k=1))
        self.ese = ESE(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        h = self.conv_reduction(x) if self.reduced else x
        for layer in self.layers:
            h = layer(h)
            outputs.append(h)
        y = self.ese(self.concat(torch.cat(outputs, dim=1)))
        return y + x if self.identity else y


class VoVNet(nn.Module):
    """Returns stage3..stage5 (strides 8, 16, 32), the FPN's inputs."""

    out_features = ("stage3", "stage4", "stage5")

    def __init__(self, v: Variant):
        super().__init__()
        s0, s1, s2 = v.stem_ch
        second = dw_sep_unit if v.depthwise else conv_unit
        self.stem = seq(conv_unit(3, s0, "stem_1", stride=2)
                        + second(s0, s1, "stem_2") + second(s1, s2, "stem_3", stride=2))
        cin = s2
        self.stage_names = []
        for i, (conv_ch, out_ch, blocks) in enumerate(zip(v.stage_conv_ch, v.stage_out_ch, v.blocks_per_stage)):
            num = i + 2
            stage = nn.Sequential()
            if num != 2:
                stage.add_module("Pooling", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
            for b in range(blocks):
                name = f"OSA{num}_{b + 1}"
                stage.add_module(name, OSABlock(cin if b == 0 else out_ch, conv_ch, out_ch,
                                                v.layers_per_block, name, identity=b > 0, depthwise=v.depthwise))
            self.add_module(f"stage{num}", stage)
            self.stage_names.append(f"stage{num}")
            cin = out_ch
        self.out_channels = {f"stage{i + 2}": c for i, c in enumerate(v.stage_out_ch)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        out = {}
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self.out_features:
                out[name] = x
        return out
