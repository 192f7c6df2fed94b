#!/usr/bin/env python3
"""Builds the segmentation fixtures in Resources/segmentation/ from the official code.

The backbone is hustvl/Vim's own `seg/backbone/vim.py` (`VisionMambaSeg`) over its
`vim/models_mamba.py`, imported unchanged. Only what needs CUDA is replaced by the pure-PyTorch
reference functions mamba_ssm ships for its own tests: the selective scan (`selective_scan_ref`),
the causal conv (F.conv1d), and the fused add + RMSNorm (written out below as `rms_norm_ref`
computes it, keeping the input dtype so that the whole pass runs in float64). The heads are
mmseg 0.29's UPerHead (with its PPM) and FCNHead and mmcv's ConvModule, ported line by line below
with their module names, because mmcv 1.x does not install on this Python; SyncBN is BatchNorm2d
in one process (the same arithmetic). The loss is mmseg's: each head's logits resized bilinearly
(align_corners False) to the labels, cross-entropy with ignore index 255 averaged over all pixels
(avg_non_ignore False), the auxiliary one weighted 0.4.

The seg backbone passes its constructor arguments to VisionMamba by position: (img_size,
patch_size, stride, depth, embed_dim, in_chans, num_classes). That matched VisionMamba at the
commit that added seg/ (bb3928b); a later commit inserted d_state before channels, so at the
repository's head in_chans lands in d_state and num_classes in channels, and the backbone cannot
take RGB images. The fixtures therefore use the vim/ and mamba-1p1p1/ code of bb3928b.

Setup (CPU only):
    python3 -m venv /tmp/segenv && /tmp/segenv/bin/pip install torch einops safetensors numpy
    git clone https://github.com/hustvl/Vim /tmp/Vim && git -C /tmp/Vim checkout bb3928b
    /tmp/segenv/bin/python make_segmentation_fixtures.py /tmp/Vim

Everything runs in float64; tensors are stored as float32, and the weights are the float32 values
the float64 run used. Weights are moved off their initial values with seeded noise.
"""
import json
import os
import sys
import types
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import save_file

VIM = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "/work/vim-src")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Resources", "segmentation")
sys.path[:0] = [os.path.join(VIM, "mamba-1p1p1"), os.path.join(VIM, "vim"), os.path.join(VIM, "seg")]


# --- Stand-ins for the CUDA extensions and the mmcv/mmseg registries ------------------------------
def stub(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def causal_conv1d_fn(x, weight, bias=None, activation=None):
    out = F.conv1d(x, weight.unsqueeze(1), bias, padding=weight.shape[-1] - 1, groups=x.shape[1])[..., : x.shape[-1]]
    return F.silu(out) if activation in ("silu", "swish") else out


class RMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.register_parameter("bias", None)


def rms_norm_fn(x, weight, bias, residual=None, prenorm=False, residual_in_fp32=False, eps=1e-6, **_):
    # rms_norm_ref without its casts: the residual stays in the run's dtype (float64 here).
    residual = x if residual is None else x + residual
    out = residual * torch.rsqrt(residual.pow(2).mean(-1, keepdim=True) + eps) * weight
    if bias is not None:
        out = out + bias
    return (out, residual) if prenorm else out


def layer_norm_fn(*args, **kwargs):
    raise NotImplementedError("Vim uses RMSNorm")


class DropPath(nn.Module):
    """timm's DropPath; the fixtures run without drop path, where it is the identity."""

    def __init__(self, drop_prob=0.0):
        super().__init__()
        assert drop_prob == 0.0

    def forward(self, x):
        return x


def lecun_normal_(t):
    return nn.init.normal_(t, std=(1.0 / t.shape[1]) ** 0.5)


# timm 0.4.12 (what Vim pins) imports torchvision at import time; Vim needs only these helpers.
stub("timm")
stub("timm.models")
stub("timm.models.layers", trunc_normal_=nn.init.trunc_normal_, lecun_normal_=lecun_normal_, DropPath=DropPath,
     to_2tuple=lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x))
stub("timm.models.vision_transformer", VisionTransformer=object, _cfg=lambda **kw: kw, _load_weights=None)
stub("timm.models.registry", register_model=lambda f: f)
stub("selective_scan_cuda")
stub("causal_conv1d_cuda")
stub("causal_conv1d", causal_conv1d_fn=causal_conv1d_fn, causal_conv1d_update=None)
for norms in ("mamba_ssm.ops.triton.layer_norm", "mamba_ssm.ops.triton.layernorm"):   # renamed in later commits
    stub(norms, RMSNorm=RMSNorm, rms_norm_fn=rms_norm_fn, layer_norm_fn=layer_norm_fn)
stub("mamba_ssm.ops.triton.selective_state_update", selective_state_update=None)
stub("mamba_ssm.utils.generation", GenerationMixin=object)
stub("mamba_ssm.utils.hf", load_config_hf=None, load_state_dict_hf=None)


class Registry:
    def register_module(self, *args, **kwargs):
        return lambda cls: cls


stub("mmcv_custom", load_checkpoint=None)
stub("mmseg")
stub("mmseg.utils", get_root_logger=lambda: None)
stub("mmseg.models")
stub("mmseg.models.builder", BACKBONES=Registry())

import mamba_ssm.ops.selective_scan_interface as ssi  # noqa: E402
import mamba_ssm.modules.mamba_simple as mamba_simple  # noqa: E402


def mamba_inner_fn_no_out_proj_ref(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, A, B=None, C=None, D=None,
                                   delta_bias=None, B_proj_bias=None, C_proj_bias=None, delta_softplus=True):
    """`mamba_inner_ref` without the out_proj, as MambaInnerFnNoOutProj computes it."""
    L = xz.shape[-1]
    rank, n = delta_proj_weight.shape[1], A.shape[-1]
    x, z = xz.chunk(2, dim=1)
    x = causal_conv1d_fn(x, rearrange(conv1d_weight, "d 1 w -> d w"), conv1d_bias, "silu")
    x_dbl = F.linear(rearrange(x, "b d l -> (b l) d"), x_proj_weight)
    delta = rearrange(delta_proj_weight @ x_dbl[:, :rank].t(), "d (b l) -> b d l", l=L)
    B = rearrange(x_dbl[:, rank:rank + n], "(b l) n -> b n l", l=L).contiguous()
    C = rearrange(x_dbl[:, -n:], "(b l) n -> b n l", l=L).contiguous()
    return ssi.selective_scan_ref(x, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=True)


mamba_simple.mamba_inner_fn_no_out_proj = mamba_inner_fn_no_out_proj_ref
mamba_simple.selective_scan_fn = ssi.selective_scan_ref
mamba_simple.causal_conv1d_fn = causal_conv1d_fn

import models_mamba  # noqa: E402

models_mamba.RMSNorm, models_mamba.rms_norm_fn = RMSNorm, rms_norm_fn
from backbone.vim import VisionMambaSeg  # noqa: E402


# --- mmcv's ConvModule and mmseg 0.29's heads, line by line ---------------------------------------
class ConvModule(nn.Module):
    """Conv2d (no bias: a norm follows) → BatchNorm → ReLU, under mmcv's names conv and bn."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU()

    def forward(self, x):
        return self.activate(self.bn(self.conv(x)))


def resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class BaseDecodeHead(nn.Module):
    def __init__(self, channels, num_classes, dropout_ratio):
        super().__init__()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else None

    def cls_seg(self, feat):
        if self.dropout is not None:
            feat = self.dropout(feat)
        return self.conv_seg(feat)


class PPM(nn.ModuleList):
    def __init__(self, pool_scales, in_channels, channels):
        super().__init__()
        for pool_scale in pool_scales:
            self.append(nn.Sequential(nn.AdaptiveAvgPool2d(pool_scale), ConvModule(in_channels, channels, 1)))

    def forward(self, x):
        return [resize(ppm(x), x.size()[2:]) for ppm in self]


class UPerHead(BaseDecodeHead):
    def __init__(self, in_channels, channels, num_classes, pool_scales=(1, 2, 3, 6), dropout_ratio=0.0):
        super().__init__(channels, num_classes, dropout_ratio)
        self.psp_modules = PPM(pool_scales, in_channels[-1], channels)
        self.bottleneck = ConvModule(in_channels[-1] + len(pool_scales) * channels, channels, 3, padding=1)
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for c in in_channels[:-1]:
            self.lateral_convs.append(ConvModule(c, channels, 1))
            self.fpn_convs.append(ConvModule(channels, channels, 3, padding=1))
        self.fpn_bottleneck = ConvModule(len(in_channels) * channels, channels, 3, padding=1)

    def psp_forward(self, inputs):
        x = inputs[-1]
        return self.bottleneck(torch.cat([x] + self.psp_modules(x), dim=1))

    def forward(self, inputs):
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        laterals.append(self.psp_forward(inputs))
        n = len(laterals)
        for i in range(n - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [self.fpn_convs[i](laterals[i]) for i in range(n - 1)] + [laterals[-1]]
        for i in range(n - 1, 0, -1):
            outs[i] = resize(outs[i], outs[0].shape[2:])
        return self.cls_seg(self.fpn_bottleneck(torch.cat(outs, dim=1)))


class FCNHead(BaseDecodeHead):
    def __init__(self, in_channels, channels, num_classes, in_index=2, dropout_ratio=0.0):
        super().__init__(channels, num_classes, dropout_ratio)
        self.in_index = in_index
        self.convs = nn.Sequential(ConvModule(in_channels, channels, 3, padding=1))

    def forward(self, inputs):
        return self.cls_seg(self.convs(inputs[self.in_index]))


class EncoderDecoder(nn.Module):
    def __init__(self, backbone, decode_head, auxiliary_head):
        super().__init__()
        self.backbone, self.decode_head, self.auxiliary_head = backbone, decode_head, auxiliary_head


def mmseg_loss(logits, labels, weight):
    logits = resize(logits, labels.shape[1:])
    return weight * F.cross_entropy(logits, labels, reduction="none", ignore_index=255).mean()


# --- Cases ----------------------------------------------------------------------------------------
def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point() or "rope" in name:
                continue
            noise = torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g, dtype=torch.float64).to(t.dtype))
            elif name.endswith("bn.weight") or name.endswith("fpn1.1.weight"):
                t.add_(0.2 * noise)
            else:
                t.add_(0.05 * noise)


def build(case):
    c = case["backbone"]
    backbone = VisionMambaSeg(
        img_size=c["img_size"], patch_size=c["patch_size"], stride=c["patch_size"], embed_dim=c["embed_dim"], depth=c["depth"],
        out_indices=c["out_indices"], pretrained=None, rms_norm=True, residual_in_fp32=c["residual_in_fp32"], fused_add_norm=True,
        if_abs_pos_embed=True, if_rope=c["if_rope"], if_rope_residual=c["if_rope_residual"], bimamba_type="v2",
        final_pool_type="all", if_divide_out=True, if_cls_token=c["if_cls_token"], drop_path_rate=0.0)
    D = c["embed_dim"]
    decode = UPerHead([D] * 4, case["channels"], case["num_classes"])
    aux = FCNHead(D, case["auxiliary_channels"], case["num_classes"])
    return EncoderDecoder(backbone, decode, aux)


def to_f32(t):
    return t.detach().to(torch.float32).contiguous()


def make(name, case, seed):
    torch.manual_seed(seed)
    model = build(case)
    perturb(model, seed + 1)
    model = model.double()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    weights = {k: (v.to(torch.float32) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    # The float64 run uses exactly the float32 weights stored.
    model.load_state_dict({k: (v.to(torch.float64) if v.is_floating_point() else v) for k, v in weights.items()})

    g = torch.Generator().manual_seed(seed + 2)
    B, S, K = case["batch"], case["backbone"]["img_size"], case["num_classes"]
    images = torch.randn(B, 3, S, S, generator=g, dtype=torch.float64)
    labels = torch.randint(0, K, (B, S, S), generator=g)
    labels[torch.rand(B, S, S, generator=g) < 0.1] = 255
    io = {"input": to_f32(images), "labels": labels.to(torch.int64)}
    images = to_f32(images).double()

    # Training mode: batch statistics, the running ones updated, and the gradients.
    model.train()
    feats = model.backbone(images)
    decode = model.decode_head(feats)
    aux = model.auxiliary_head(feats)
    loss_decode = mmseg_loss(decode, labels, 1.0)
    loss_aux = mmseg_loss(aux, labels, case["auxiliary_loss_weight"])
    loss = loss_decode + loss_aux
    loss.backward()
    for i, f in enumerate(feats):
        io[f"features.{i}"] = to_f32(f)
    io.update({"decode_logits": to_f32(decode), "aux_logits": to_f32(aux), "loss_decode": to_f32(loss_decode.reshape(1)),
               "loss_aux": to_f32(loss_aux.reshape(1)), "loss": to_f32(loss.reshape(1))})
    for k, p in model.named_parameters():
        # norm_f takes no part in the features: its gradient is zero (None in PyTorch).
        io[f"grad.{k}"] = to_f32(p.grad if p.grad is not None else torch.zeros_like(p))
    for k, v in model.state_dict().items():
        if "running" in k:
            io[f"after.{k}"] = to_f32(v)

    # Evaluation mode with the stored running statistics: logits at the input size, as
    # EncoderDecoder.encode_decode gives them.
    model.load_state_dict({k: (v.to(torch.float64) if v.is_floating_point() else v) for k, v in weights.items()})
    model.eval()
    with torch.no_grad():
        feats = model.backbone(images)
        decode = model.decode_head(feats)
        io["eval.decode_logits"] = to_f32(decode)
        io["eval.seg_logits"] = to_f32(resize(decode, images.shape[2:]))
        for i, f in enumerate(feats):
            io[f"eval.features.{i}"] = to_f32(f)

    os.makedirs(OUT, exist_ok=True)
    save_file(weights, os.path.join(OUT, f"{name}.safetensors"))
    save_file(io, os.path.join(OUT, f"{name}.io.safetensors"))
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(case, f, indent=2, sort_keys=True)
        f.write("\n")
    print(name, "loss", loss.item(), "parameters", sum(p.numel() for p in model.parameters()))


MICRO = {
    "backbone": {"img_size": 64, "patch_size": 16, "embed_dim": 32, "depth": 4, "out_indices": [0, 1, 2, 3],
                 "residual_in_fp32": False, "if_rope": False, "if_rope_residual": False, "if_cls_token": False},
    "channels": 16, "auxiliary_channels": 8, "num_classes": 5, "batch": 2, "auxiliary_loss_weight": 0.4,
    "pool_scales": [1, 2, 3, 6], "note": "upernet_vim_tiny flags at small shapes; drop path and dropout off",
}
ROPE = json.loads(json.dumps(MICRO))
ROPE["backbone"].update({"residual_in_fp32": True, "if_rope": True, "if_rope_residual": True, "if_cls_token": True})
ROPE["note"] = "upernet_vim_small flags (RoPE on tokens and residual, class token deleted by the seg backbone) at small shapes"

if __name__ == "__main__":
    torch.set_num_threads(2)
    make("upernet-vim-micro", MICRO, 10)
    make("upernet-vim-micro-rope", ROPE, 20)
