#!/usr/bin/env python3
"""Builds the DeiT fixtures in Resources/deit/ from timm's VisionTransformer.

The model is timm's own `VisionTransformer` with the structure of `deit_tiny_patch16_224` (class
token, absolute position embedding, pre-norm blocks with LayerNorm eps 1e-6, attention with a
biased qkv and head_dim^-0.5 scaling, an MLP with exact GELU, the final norm and a linear head on
the class token) at a micro size: 32 px images, patch 8 (a 4x4 grid, 17 tokens), width 48, depth 2,
3 heads, 10 classes. Only the sizes differ from deit_tiny.

timm imports torchvision for modules this model does not use (FrozenBatchNorm2d, transforms);
where torchvision is missing or broken, an inert stand-in module is put in its place.

Run (CPU):
    /work/pyenv/bin/python make_deit_fixtures.py        # timm 1.0.x, torch, safetensors

Everything runs in float64 and is stored as float32; the weights are the float32 values the
float64 run used (seeded random values, not timm's init, so every parameter matters).
Written: deit-micro.safetensors (the state dict under timm's names), deit-micro.io.safetensors
(`input`, `labels`, `logits`, `loss` = mean cross-entropy, `grad.<name>` for every parameter,
`block.<i>.out`, and `pos_embed.resampled`: timm's resample_abs_pos_embed of pos_embed to a 6x6
grid with the class row kept apart), deit-micro.json (the sizes).
"""
import importlib.abc
import importlib.machinery
import json
import os
import sys
import types

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Resources", "deit")


def stub_torchvision():
    class Anything(type):
        def __getattr__(cls, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Anything(name, (), {})

    class Stub(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Anything(name, (), {})

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path, target=None):
            if fullname == "torchvision" or fullname.startswith("torchvision."):
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            return None

        def create_module(self, spec):
            return Stub(spec.name)

        def exec_module(self, module):
            module.__path__ = []

    sys.meta_path.insert(0, Finder())


try:
    import torchvision.ops.misc  # noqa: F401
except Exception:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    stub_torchvision()

from timm.layers import resample_abs_pos_embed  # noqa: E402
from timm.models.vision_transformer import VisionTransformer  # noqa: E402

CONFIG = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, mlp_ratio=4, num_classes=10)
BATCH = 2


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    model = VisionTransformer(**CONFIG, qkv_bias=True)   # deit_tiny_patch16_224's structure
    model = model.double().eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight" else 0.0
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            fan_in = p.shape[1] if p.dim() == 2 else (p[0].numel() if p.dim() == 4 else 1)
            std = 0.3 if p.dim() < 2 or name in ("cls_token", "pos_embed") else 1.0 / fan_in ** 0.5
            p.copy_((scale + std * noise).float().double())

    images = torch.randn(BATCH, 3, CONFIG["img_size"], CONFIG["img_size"], generator=gen, dtype=torch.float64)
    images = images.float().double()
    labels = torch.tensor([3, 7])

    blocks = []
    handles = [b.register_forward_hook(lambda m, i, o: blocks.append(o.detach().clone())) for b in model.blocks]
    logits = model(images)
    for h in handles:
        h.remove()
    loss = F.cross_entropy(logits, labels)
    loss.backward()

    grid = CONFIG["img_size"] // CONFIG["patch_size"]
    resampled = resample_abs_pos_embed(model.pos_embed.detach(), new_size=(6, 6), old_size=(grid, grid),
                                       num_prefix_tokens=1, interpolation="bicubic", antialias=False)

    weights = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    io = {
        "input": images.float(),
        "labels": labels.long(),
        "logits": logits.detach().float(),
        "loss": loss.detach().float().reshape(1),
        "pos_embed.resampled": resampled.float().contiguous(),
    }
    for i, b in enumerate(blocks):
        io[f"block.{i}.out"] = b.float().contiguous()
    for name, p in model.named_parameters():
        io[f"grad.{name}"] = p.grad.float().contiguous()
    save_file(weights, os.path.join(OUT, "deit-micro.safetensors"))
    save_file(io, os.path.join(OUT, "deit-micro.io.safetensors"))
    with open(os.path.join(OUT, "deit-micro.json"), "w") as f:
        json.dump(dict(CONFIG, batch=BATCH, eps=1e-6, resampled_grid=6), f, indent=2)
        f.write("\n")
    print("loss", loss.item(), "logits", logits.shape)


if __name__ == "__main__":
    main()
