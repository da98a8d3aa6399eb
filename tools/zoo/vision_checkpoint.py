#!/usr/bin/env python3
"""Random-weight image classifiers from transformers' own config classes, saved as Hugging Face checkpoints for
optimum-executorch's `--task image-classification` exporter (vision_entries.py).

Usage: tools/.venv/bin/python tools/zoo/vision_checkpoint.py FAMILY OUT_DIR [--seed S]

Families (tiny ones for the zoo's committed fixtures, full-size ones for the speed row):
  mobilenet_v2_tiny   MobileNetV2Config, depth multiplier 0.35, 64x64 images, 10 classes (TF padding as the
                      google/mobilenet_v2_* checkpoints: a constant pad before every strided conv)
  resnet_tiny         ResNetConfig, bottleneck blocks [1, 1, 1, 1] of 16..128 channels, 64x64, 10 classes
  resnet18_tiny       ResNetConfig, basic blocks [1, 1, 1, 1] of 8..64 channels, 48x48, 10 classes
  mobilenet_v2        MobileNetV2 1.0 at 224x224, 1001 classes (google/mobilenet_v2_1.0_224's shape)
  resnet50            ResNet-50 at 224x224, 1000 classes (microsoft/resnet-50's shape)
  resnet18            ResNet-18 at 224x224, 1000 classes (microsoft/resnet-18's shape)
  held-out variants: the same with --held-out (other sizes and seed; see HELD_OUT below)

Every weight is drawn from the seed (transformers' initialisation, then BatchNorm's affine parameters and running
statistics replaced by non-trivial values, so a folded or unfolded batch norm that reads them wrongly cannot pass).
ResNetConfig has no image_size; the exporter reads config.image_size for its example input, so it is set as an extra
config attribute (saved in config.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

FAMILIES = {
    "mobilenet_v2_tiny": ("mobilenet_v2", dict(depth_multiplier=0.35, image_size=64, num_labels=10)),
    "resnet_tiny": ("resnet", dict(depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128], embedding_size=16,
                                   layer_type="bottleneck", image_size=64, num_labels=10)),
    "resnet18_tiny": ("resnet", dict(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64], embedding_size=8,
                                     layer_type="basic", image_size=48, num_labels=10)),
    "mobilenet_v2": ("mobilenet_v2", dict(depth_multiplier=1.0, image_size=224, num_labels=1001)),
    "resnet50": ("resnet", dict(depths=[3, 4, 6, 3], hidden_sizes=[256, 512, 1024, 2048], embedding_size=64,
                                layer_type="bottleneck", image_size=224, num_labels=1000)),
    "resnet18": ("resnet", dict(depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], embedding_size=64,
                                layer_type="basic", image_size=224, num_labels=1000)),
}

# Held out: other widths, image sizes (not multiples of 32: odd feature maps under stride 2) and seed.
HELD_OUT = {
    "mobilenet_v2_tiny": dict(depth_multiplier=0.5, image_size=56, num_labels=7),
    "resnet_tiny": dict(depths=[2, 1, 1, 1], hidden_sizes=[24, 40, 48, 96], embedding_size=24, image_size=72,
                        num_labels=7),
    "resnet18_tiny": dict(depths=[1, 2, 1, 1], hidden_sizes=[8, 24, 32, 48], embedding_size=16, image_size=40,
                          num_labels=7),
}


def build(family: str, held_out: bool, seed: int):
    from transformers import (MobileNetV2Config, MobileNetV2ForImageClassification, ResNetConfig,
                              ResNetForImageClassification)
    kind, kw = FAMILIES[family]
    kw = dict(kw, **(HELD_OUT.get(family, {}) if held_out else {}))
    torch.manual_seed(seed)
    if kind == "mobilenet_v2":
        config = MobileNetV2Config(**kw)
        model = MobileNetV2ForImageClassification(config)
    else:
        config = ResNetConfig(**kw)
        model = ResNetForImageClassification(config)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                # He-style scale so activations stay O(1) through the depth (transformers' default init is tiny).
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model.eval(), kw


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out", action="store_true")
    a = ap.parse_args()
    model, kw = build(a.family, a.held_out, a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(a.out)
    params = sum(p.numel() for p in model.parameters())
    info = {"family": a.family, "config": kw, "seed": a.seed, "held_out": a.held_out, "parameters": params,
            "class": type(model).__name__}
    (a.out / "zoo_checkpoint.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
