#!/usr/bin/env python3
"""Golden fixtures for semantic segmentation (UperNet + Vim / DyVM backbones), built by running the
OFFICIAL PyTorch code on a CPU. Output: Resources/seg/ beside this file (see its README.md).

What runs, unchanged:
  * hustvl/Vim at commit bb3928b ("[add] seg part"): seg/backbone/vim.py (VisionMambaSeg),
    vim/models_mamba.py, vim/rope.py, vim/utils.py, mamba-1p1p1/ (mamba_ssm 1.1.1 fork with
    bimamba v2), seg/configs/ (the model configs are read with mmcv.Config.fromfile and only the
    sizes are overridden), seg/mmcv_custom/layer_decay_optimizer_constructor.py.
    Why bb3928b and not the head: VisionMambaSeg calls VisionMamba.__init__ POSITIONALLY as
    (img_size, patch_size, stride, depth, embed_dim, in_chans, num_classes). At bb3928b that
    matches VisionMamba's signature; a later commit (d08dd37) inserted `d_state` before `channels`,
    so at the head in_chans=3 lands in d_state and num_classes (80) in channels: the patch
    embedding then expects 80-channel images and the backbone cannot run on RGB.
  * NUS-HPC-AI-Lab/DyVM (head): Semantic_Segmentation/seg/backbone/vim.py (VisionMambaSeg over
    DyVM), Semantic_Segmentation/vim/dyvm.py, its mamba-1p1p1 (DynamicMamba), its configs and its
    bundled mmsegmentation 0.29.1 copy (whose EncoderDecoder is modified for the DyVM losses).
  * mmsegmentation 0.29.1 (pip wheel) and mmcv 1.7.2 (pip, the "lite" build without compiled ops):
    EncoderDecoder, UPerHead (+PPM), FCNHead, CrossEntropyLoss, ConvModule, resize.

What is replaced (only CUDA/Triton kernels, by the pure-PyTorch references mamba_ssm ships):
  * selective_scan_fn            -> mamba_ssm.ops.selective_scan_interface.selective_scan_ref
  * mamba_inner_fn_no_out_proj   -> mamba_inner_ref (same file) called with out_proj = identity
                                    (exact: y @ I == y) and no out_proj bias, i.e. mamba_inner_ref
                                    without its final projection, which is what the fused kernel
                                    MambaInnerFnNoOutProj computes
  * mamba_inner_fn / bimamba_inner_fn -> mamba_inner_ref / bimamba_inner_ref (unused by these models)
  * causal_conv1d_fn             -> causal_conv1d 1.1.x `causal_conv1d_ref` (F.conv1d, depthwise,
                                    left padding width-1, optional SiLU), written out below
  * rms_norm_fn (Triton)         -> rms_norm_ref of mamba_ssm/ops/triton/layernorm.py (Vim) or
                                    layer_norm.py (DyVM), prenorm returning (out, x + residual)
  * SyncBN of the heads' norm_cfg -> BN (nn.BatchNorm2d; the same arithmetic in one process). The
    backbone's own nn.SyncBatchNorm (fpn1.1) is kept: without a process group it runs F.batch_norm.
Import-only stand-ins (raise if ever called): selective_scan_cuda, causal_conv1d_cuda, mmcv.ops
(not built in mmcv-lite), transformers (mamba_ssm.utils.generation/hf import it), torchvision when
it is not installable (timm and mmcv.runner import it; the CPU torch wheel has no matching
torchvision on PyPI), and triton when absent (its decorators become the identity, so the
layernorm module imports; its kernels are never called).

Precision: everything runs in float64 (model.double(), double inputs) except where a case says
otherwise. The official code casts A_log, D and dt_proj.bias with `.float()` and selective_scan_ref
upcasts with `.float()`; during the runs `torch.Tensor.float` leaves float64 tensors in float64
(context manager `keep_float64`), so the reference really is float64 end to end. The stored weights
are float32 and the float64 run uses exactly those values. `residual_in_fp32` is therefore a no-op.

Cases (details in Resources/seg/README.md): upernet-vim-micro (tiny-config flags) and
upernet-vim-micro-rope (small-config flags): train step (losses, every gradient, BN running stats
after) then eval; upernet-dyvm-micro: eval (features, logits, kept tokens, direction gates), then
DyVM's own training step with its Gumbel/logistic draws recorded; upernet-vim-tiny-512: the real
Vim-T UperNet at 512x512 in eval with formula-defined weights (`formula_rule`, `uniform_pm1`);
plus layer-decay.md (the official LayerDecayOptimizerConstructor on the real Vim-T parameter names).
Weights of the micro cases are moved off their init with seeded noise (`perturb`).

Setup (CPU only; a few minutes):
    python3 -m venv /work/pyenv
    /work/pyenv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu  # or a local CPU wheel
    /work/pyenv/bin/pip install einops safetensors numpy scipy prettytable pyyaml huggingface_hub
    /work/pyenv/bin/pip install timm==1.0.7 --no-deps        # the version seg-requirements.txt pins
    /work/pyenv/bin/pip install "setuptools<70" wheel        # mmcv 1.7's setup.py needs pkg_resources
    /work/pyenv/bin/pip install --no-build-isolation mmcv==1.7.2   # pure-python build, ~1 minute
    /work/pyenv/bin/pip install mmsegmentation==0.29.1 --no-deps   # needs no mmcls for what we use
  Sources (read-only; no network needed at run time):
    git clone https://github.com/hustvl/Vim $VIM_SRC && git -C $VIM_SRC checkout bb3928b
    git clone https://github.com/NUS-HPC-AI-Lab/DyVM $DYVM_SRC
  (or `git archive bb3928b vim seg mamba-1p1p1 | tar -x -C $VIM_SRC` from a bare mirror.)

Run (under a minute on 2 cores; the 512x512 float64 case takes ~15 s):
    VIM_SRC=/work/vim-bb3928b DYVM_SRC=/work/dyvm-src /work/pyenv/bin/python make_seg_fixtures.py
  Options: --vim DIR, --dyvm DIR (root holding Semantic_Segmentation/), --out DIR,
  --cases a,b,... (default: all), --layer-decay (only the layer-decay table).
  Each case runs in its own subprocess (Vim and DyVM both define `models_mamba`/`mamba_ssm`/
  `VisionMambaSeg`, which cannot live in one interpreter).
"""
import argparse
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import io
import json
import math
import os
import subprocess
import sys
import time
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "Resources", "seg")
CASES = ["upernet-vim-micro", "upernet-vim-micro-rope", "upernet-dyvm-micro", "upernet-vim-tiny-512"]


# ================================================================================================
# Import-only stand-ins
# ================================================================================================
class _RaisingStub(type):
    """A placeholder class: any attribute is another placeholder, calling one raises."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        child = _RaisingStub(cls.__qualname__ + "." + name, (), {})
        type.__setattr__(cls, name, child)
        return child

    def __call__(cls, *args, **kwargs):
        raise RuntimeError("import-only stand-in called: " + cls.__qualname__)

    def __mro_entries__(cls, bases):
        return (object,)


class _PassStub(_RaisingStub):
    """Like _RaisingStub, but calling it with one callable returns that callable (a decorator
    such as triton.jit), and any other call returns a new placeholder (a decorator factory such as
    triton.autotune(...), or triton.Config(...))."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        child = _PassStub(cls.__qualname__ + "." + name, (), {})
        type.__setattr__(cls, name, child)
        return child

    def __call__(cls, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], _RaisingStub):
            return args[0]
        return _PassStub(cls.__qualname__ + "()", (), dict(kwargs))  # e.g. triton.Config(..., num_warps=4)


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self):
        self.prefixes = {}

    def add(self, prefix, kind):
        self.prefixes[prefix] = kind

    def _kind(self, name):
        for p, kind in self.prefixes.items():
            if name == p or name.startswith(p + "."):
                return kind
        return None

    def find_spec(self, name, path=None, target=None):
        if self._kind(name) is None:
            return None
        return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec):
        kind = self._kind(spec.name)
        m = types.ModuleType(spec.name)
        m.__path__ = []
        m.__version__ = "0.0.0+stub"

        def __getattr__(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return kind(spec.name + "." + name, (), {})

        m.__getattr__ = __getattr__
        return m

    def exec_module(self, module):
        pass


def _importable(name):
    try:
        importlib.import_module(name)
        return True
    except Exception:
        for k in list(sys.modules):
            if k == name or k.startswith(name + "."):
                del sys.modules[k]
        return False


def causal_conv1d_ref(x, weight, bias=None, activation=None):
    """causal_conv1d 1.1.x `causal_conv1d_ref` (x: [B, D, L], weight: [D, W])."""
    if activation not in [None, "silu", "swish"]:
        raise NotImplementedError("activation must be None, silu, or swish")
    dtype_in = x.dtype
    x = x.to(weight.dtype)
    seqlen = x.shape[-1]
    dim, width = weight.shape
    out = F.conv1d(x, weight.unsqueeze(1), bias, padding=width - 1, groups=dim)
    out = out[..., :seqlen]
    return (out if activation is None else F.silu(out)).to(dtype=dtype_in)


def install_stubs():
    finder = _StubFinder()
    sys.meta_path.insert(0, finder)
    for name in ("selective_scan_cuda", "causal_conv1d_cuda", "mmcv.ops", "transformers"):
        finder.add(name, _RaisingStub)
    if not _importable("torchvision"):
        finder.add("torchvision", _RaisingStub)
    if not _importable("triton"):
        finder.add("triton", _PassStub)
    cc = types.ModuleType("causal_conv1d")
    cc.causal_conv1d_fn = causal_conv1d_ref
    cc.causal_conv1d_update = None
    sys.modules["causal_conv1d"] = cc


@contextlib.contextmanager
def keep_float64():
    """Inside: x.float() returns x unchanged when x is float64 (see the module docstring)."""
    orig = torch.Tensor.float

    def _float(self, *args, **kwargs):
        if self.dtype == torch.float64:
            return self
        return orig(self, *args, **kwargs)

    torch.Tensor.float = _float
    try:
        yield
    finally:
        torch.Tensor.float = orig


def patch_mamba(layernorm_module_name):
    """Swap the CUDA/Triton entry points of the (already importable) mamba_ssm for references."""
    from einops import rearrange
    ssi = importlib.import_module("mamba_ssm.ops.selective_scan_interface")
    ln = importlib.import_module(layernorm_module_name)
    rms_norm_ref = ln.rms_norm_ref

    def rms_norm_fn(x, weight, bias, residual=None, prenorm=False, residual_in_fp32=False, eps=1e-6, **extra):
        for k in ("x1", "weight1", "bias1", "rowscale"):
            assert extra.get(k) is None, k
        assert extra.get("dropout_p", 0.0) == 0.0
        out, summed = rms_norm_ref(x, weight, bias, residual=residual, eps=eps, prenorm=True)
        return (out, summed) if prenorm else out

    def layer_norm_fn(*args, **kwargs):
        raise NotImplementedError("these models use RMSNorm")

    ln.rms_norm_fn = rms_norm_fn
    ln.layer_norm_fn = layer_norm_fn

    def mamba_inner_fn_no_out_proj(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, A, B=None, C=None,
                                   D=None, delta_bias=None, B_proj_bias=None, C_proj_bias=None, delta_softplus=True,
                                   checkpoint_lvl=1):
        eye = torch.eye(xz.shape[1] // 2, dtype=xz.dtype, device=xz.device)
        y = ssi.mamba_inner_ref(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, eye, None, A, B, C, D,
                                delta_bias=delta_bias, B_proj_bias=B_proj_bias, C_proj_bias=C_proj_bias,
                                delta_softplus=delta_softplus)
        return rearrange(y, "b l d -> b d l")

    ssi.selective_scan_fn = ssi.selective_scan_ref
    ssi.causal_conv1d_fn = causal_conv1d_ref
    ms = importlib.import_module("mamba_ssm.modules.mamba_simple")
    ms.selective_scan_fn = ssi.selective_scan_ref
    ms.causal_conv1d_fn = causal_conv1d_ref
    ms.mamba_inner_fn = ssi.mamba_inner_ref
    if hasattr(ssi, "bimamba_inner_ref"):
        ms.bimamba_inner_fn = ssi.bimamba_inner_ref
    ms.mamba_inner_fn_no_out_proj = mamba_inner_fn_no_out_proj
    for name in ("RMSNorm", "rms_norm_fn", "layer_norm_fn"):
        if hasattr(ms, name) and getattr(ms, name) is not None:
            setattr(ms, name, getattr(ln, name))
    return ln


def import_vim(vim_root):
    """hustvl/Vim @ bb3928b: returns the mmseg module (pip) with VisionMambaSeg registered."""
    seg = os.path.join(vim_root, "seg")
    sys.path[:0] = [os.path.join(vim_root, "mamba-1p1p1"), os.path.join(vim_root, "vim"), seg]
    install_stubs()
    old_name = os.path.exists(os.path.join(vim_root, "mamba-1p1p1", "mamba_ssm", "ops", "triton", "layernorm.py"))
    patch_mamba("mamba_ssm.ops.triton." + ("layernorm" if old_name else "layer_norm"))  # renamed after bb3928b
    import mmseg  # noqa: F401
    with contextlib.redirect_stdout(io.StringIO()):
        import backbone  # noqa: F401  (seg/backbone: registers VisionMambaSeg in mmseg's BACKBONES)
    import models_mamba
    assert models_mamba.rms_norm_fn.__module__ == __name__, "reference RMSNorm not in place"
    return seg


def import_dyvm(dyvm_root):
    base = os.path.join(dyvm_root, "Semantic_Segmentation")
    seg = os.path.join(base, "seg")
    sys.path[:0] = [os.path.join(seg, "mmsegmentation"), os.path.join(base, "mamba-1p1p1"), os.path.join(base, "vim"), seg]
    install_stubs()
    patch_mamba("mamba_ssm.ops.triton.layer_norm")
    import mmseg
    assert os.path.abspath(mmseg.__file__).startswith(os.path.abspath(seg)), "DyVM's bundled mmseg must be used"
    with contextlib.redirect_stdout(io.StringIO()):
        import backbone  # noqa: F401
    import dyvm
    assert dyvm.rms_norm_fn.__module__ == __name__, "reference RMSNorm not in place"
    return seg


# ================================================================================================
# Models from the official configs
# ================================================================================================
BN = dict(type="BN", requires_grad=True)


def official_model_cfg(seg, config_name, backbone=None, decode=None, aux=None):
    from mmcv import Config
    cfg = Config.fromfile(os.path.join(seg, "configs", "vim", "upernet", config_name + ".py"))
    m = cfg.model
    # Fixture-wide changes: no stochastic parts, one-process BN.
    m.backbone.drop_path_rate = 0.0
    m.decode_head.dropout_ratio = 0.0
    m.auxiliary_head.dropout_ratio = 0.0
    m.decode_head.norm_cfg = dict(BN)
    m.auxiliary_head.norm_cfg = dict(BN)
    m.backbone.update(backbone or {})
    m.decode_head.update(decode or {})
    m.auxiliary_head.update(aux or {})
    return m


def build(model_cfg):
    from mmseg.models import build_segmentor
    with contextlib.redirect_stdout(io.StringIO()):
        return build_segmentor(model_cfg)


def cfg_to_json(model_cfg):
    return json.loads(json.dumps(model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else dict(model_cfg), default=str))


# ================================================================================================
# Weights
# ================================================================================================
def perturb(model, seed):
    """Move every floating state_dict entry off its init with seeded noise (state_dict order)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point() or "rope.freqs" in name:
                continue
            noise = torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)
            if name.endswith("running_var"):
                t.copy_((0.5 + torch.rand(t.shape, generator=g, dtype=torch.float64)).to(t.dtype))
            elif name.endswith("running_mean"):
                t.copy_(0.2 * noise)
            elif name.endswith("bn.weight") or name.endswith("fpn1.1.weight"):
                t.add_(0.2 * noise)
            else:
                t.add_(0.05 * noise)


def weights_of(model):
    """float32 copies of the state_dict, without num_batches_tracked."""
    return {k: (v.detach().to(torch.float32) if v.is_floating_point() else v.detach()).contiguous().clone()
            for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def load_weights(model, weights, dtype):
    sd = model.state_dict()
    with torch.no_grad():
        for k, v in weights.items():
            sd[k].copy_(v.to(dtype) if v.is_floating_point() else v)
        for k, v in sd.items():
            if k.endswith("num_batches_tracked"):
                v.zero_()


# ---------- the formula weights of upernet-vim-tiny-512 --------------------------------------------
def fnv1a32(s):
    h = 0x811C9DC5
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def uniform_pm1(name, n):
    """r_i in (-1, 1), i = 0..n-1: exact integer hashing, see README ('formula weights')."""
    seed = np.uint64(fnv1a32(name))
    i = np.arange(n, dtype=np.uint64)
    M = np.uint64(0xFFFFFFFF)
    x = (seed + i * np.uint64(0x9E3779B9)) & M
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & M
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & M
    x ^= x >> np.uint64(16)
    u = (x.astype(np.float64) + 0.5) / 4294967296.0
    return 2.0 * u - 1.0


def formula_rule(name, shape):
    """(center, scale) for a state_dict entry of the Vim+UperNet model; value = center + scale * r."""
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    last = name.split(".")[-1]
    if name.endswith("rope.freqs_cos") or name.endswith("rope.freqs_sin"):
        return None  # buffers computed by the model, never formula-defined
    if last == "running_var":
        return (1.0, 0.5)
    if last == "running_mean":
        return (0.0, 0.2)
    if last in ("A_log", "A_b_log"):
        return (1.4, 1.3)
    if last in ("D", "D_b"):
        return (1.0, 0.5)
    if name.endswith("dt_proj.bias") or name.endswith("dt_proj_b.bias"):
        return (-4.0, 1.5)
    if name.endswith("dt_proj.weight") or name.endswith("dt_proj_b.weight"):
        return (0.0, 1.0 / math.sqrt(fan_in))
    if name.endswith("conv1d.weight") or name.endswith("conv1d_b.weight"):
        return (0.0, 0.5)
    if name == "backbone.pos_embed":
        return (0.0, 0.5)
    if len(shape) == 1 and last == "weight":  # RMSNorm weights (layers.N.norm, norm_f) and BN weights
        return (1.0, 0.2)
    if last == "bias":
        return (0.0, 0.1)
    if name.endswith("mixer.out_proj.weight"):
        return (0.0, 6.0 * math.sqrt(3.0 / fan_in))  # larger gain: O(1) mixer outputs (the features)
    if name.startswith("backbone.fpn") and len(shape) == 4:
        # ConvTranspose2d(k=2, s=2): weight [in, out, 2, 2]; each output pixel sees `in` inputs
        return (0.0, math.sqrt(3.0 / shape[0]))
    if len(shape) >= 2 and last == "weight":  # Linear / Conv2d: unit-gain uniform
        return (0.0, math.sqrt(3.0 / fan_in))
    raise KeyError(name)


def formula_tensor(name, shape):
    rule = formula_rule(name, shape)
    center, scale = rule
    n = int(np.prod(shape)) if len(shape) else 1
    r = uniform_pm1(name, n)
    v = (scale * r) + center  # two separately rounded float64 operations, then float32
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


# ================================================================================================
# Running a case
# ================================================================================================
def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


class Capture:
    def __init__(self, model):
        self.out = {}
        self.handles = [
            model.backbone.register_forward_hook(self._hook("features")),
            # cls_seg's conv: its output is the head's output (forward_test calls head.forward directly)
            model.decode_head.conv_seg.register_forward_hook(self._hook("decode")),
        ]
        if getattr(model, "auxiliary_head", None) is not None:
            self.handles.append(model.auxiliary_head.conv_seg.register_forward_hook(self._hook("aux")))

    def _hook(self, key):
        def fn(module, inputs, output):
            self.out[key] = output
        return fn

    def close(self):
        for h in self.handles:
            h.remove()


def mmseg_ce(logits, labels, weight):
    """Independent check of mmseg 0.29's loss: resize bilinear (align_corners False) to the label
    size, per-pixel CE with ignore_index 255 (ignored pixels contribute 0), mean over ALL pixels."""
    logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return weight * F.cross_entropy(logits, labels, reduction="none", ignore_index=255).mean()


def train_step(model, images, labels, aux_weight):
    """model.forward_train as mmseg's training loop calls it; returns (io dict, loss dict)."""
    io = {}
    model.train()
    model.zero_grad(set_to_none=True)
    cap = Capture(model)
    losses = model.forward_train(images, [{} for _ in range(images.shape[0])], labels[:, None])
    cap.close()
    loss, log_vars = model._parse_losses(losses)
    loss.backward()
    feats = cap.out["features"]
    for i, f in enumerate(feats):
        io[f"features.{i}"] = f32(f)
    io["decode_logits"] = f32(cap.out["decode"])
    io["aux_logits"] = f32(cap.out["aux"])
    io["loss_decode"] = f32(losses["decode.loss_ce"].reshape(1))
    io["loss_aux"] = f32(losses["aux.loss_ce"].reshape(1))
    io["loss"] = f32(loss.reshape(1))
    # the averaging rule, checked independently
    chk_d = mmseg_ce(cap.out["decode"], labels, 1.0)
    chk_a = mmseg_ce(cap.out["aux"], labels, aux_weight)
    assert torch.allclose(chk_d, losses["decode.loss_ce"], rtol=1e-12), (chk_d, losses["decode.loss_ce"])
    assert torch.allclose(chk_a, losses["aux.loss_ce"], rtol=1e-12), (chk_a, losses["aux.loss_ce"])
    for k, p in model.named_parameters():
        io[f"grad.{k}"] = f32(p.grad if p.grad is not None else torch.zeros_like(p))
    for k, v in model.state_dict().items():
        if "running_" in k:
            io[f"after.{k}"] = f32(v)
    no_grad = [k for k, p in model.named_parameters() if p.grad is None]
    return io, {k: float(v) for k, v in log_vars.items()}, no_grad


def eval_step(model, images, prefix="eval."):
    io = {}
    model.eval()
    cap = Capture(model)
    with torch.no_grad():
        seg_logits = model.encode_decode(images, [{} for _ in range(images.shape[0])])
    cap.close()
    io[prefix + "decode_logits"] = f32(cap.out["decode"])
    io[prefix + "seg_logits"] = f32(seg_logits)
    for i, f in enumerate(cap.out["features"]):
        io[f"{prefix}features.{i}"] = f32(f)
    return io, cap.out, seg_logits


def effective_flags(model):
    """What the built model actually uses (defaults included), for the JSON."""
    bb = model.backbone
    mx = bb.layers[0].mixer
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return {
        "num_patches": bb.patch_embed.num_patches, "grid": list(bb.patch_embed.grid_size),
        "pos_embed_shape": list(bb.pos_embed.shape), "has_cls_token": hasattr(bb, "cls_token"),
        "if_rope": bb.if_rope, "if_rope_residual": bb.if_rope_residual, "residual_in_fp32": bb.residual_in_fp32,
        "if_bidirectional": bb.if_bidirectional, "use_residual_as_feature": bb.use_residual_as_feature,
        "last_layer_process": bb.last_layer_process, "out_indices": list(bb.out_indices),
        "bimamba_type": mx.bimamba_type, "if_divide_out": mx.if_divide_out, "d_state": mx.d_state,
        "d_conv": mx.d_conv, "expand": mx.expand, "d_inner": mx.d_inner, "dt_rank": mx.dt_rank,
        "rms_norm_eps": bb.layers[0].norm.eps,
        "batchnorm": sorted({f"{type(m).__name__}(eps={m.eps}, momentum={m.momentum})" for m in bns}),
        "pool_scales": list(model.decode_head.psp_modules.pool_scales), "align_corners": model.decode_head.align_corners,
        "ignore_index": model.decode_head.ignore_index,
        "avg_non_ignore": model.decode_head.loss_decode.avg_non_ignore,
    }


def save_case(out_dir, name, weights, io, meta):
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    if weights is not None:
        save_file(weights, os.path.join(out_dir, f"{name}.safetensors"))
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(out_dir, f"{name}.io.safetensors"))
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=False)
        f.write("\n")
    for suffix in (".safetensors", ".io.safetensors", ".json"):
        path = os.path.join(out_dir, name + suffix)
        if os.path.exists(path):
            os.chmod(path, 0o644)


def micro_images(seed, B, S, K):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(B, 3, S, S, generator=g, dtype=torch.float64).to(torch.float32)
    labels = torch.randint(0, K, (B, S, S), generator=g)
    labels[torch.rand(B, S, S, generator=g) < 0.1] = 255
    return images, labels.to(torch.int64)


# ---------- Vim micro cases -------------------------------------------------------------------------
MICRO_BACKBONE = dict(img_size=64, patch_size=16, embed_dim=32, depth=4, out_indices=[0, 1, 2, 3])
MICRO_DECODE = dict(in_channels=[32, 32, 32, 32], channels=16, num_classes=5)
MICRO_AUX = dict(in_channels=32, channels=8, num_classes=5)


def run_vim_micro(args, name, config_name, seed):
    seg = import_vim(args.vim)
    mcfg = official_model_cfg(seg, config_name, MICRO_BACKBONE, MICRO_DECODE, MICRO_AUX)
    torch.manual_seed(seed)
    model = build(mcfg)
    perturb(model, seed + 1)
    weights = weights_of(model)
    model = model.double()
    load_weights(model, weights, torch.float64)
    B, S, K = 2, 64, 5
    images, labels = micro_images(seed + 2, B, S, K)
    io = {"input": images, "labels": labels}
    with keep_float64():
        tio, log_vars, no_grad = train_step(model, images.double(), labels, 0.4)
        io.update(tio)
        load_weights(model, weights, torch.float64)  # eval uses the stored (noisy) running stats
        eio, _, _ = eval_step(model, images.double())
        io.update(eio)
    bb = model.backbone
    if getattr(bb, "if_rope", False):
        io["rope.freqs_cos"] = f32(bb.rope.freqs_cos)
        io["rope.freqs_sin"] = f32(bb.rope.freqs_sin)
    meta = {
        "case": name,
        "official_config": f"hustvl/Vim@bb3928b seg/configs/vim/upernet/{config_name}.py",
        "overrides": {"backbone": MICRO_BACKBONE, "decode_head": MICRO_DECODE, "auxiliary_head": MICRO_AUX,
                      "fixture_wide": "backbone.drop_path_rate 0.0; heads dropout_ratio 0.0; heads norm_cfg BN (was SyncBN)"},
        "model": cfg_to_json(mcfg),
        "effective": effective_flags(model),
        "batch": B, "img_size": S, "num_classes": K, "ignore_index": 255, "auxiliary_loss_weight": 0.4,
        "mode": "train (forward_train + backward), then eval (encode_decode) with the stored running stats",
        "precision": "float64 run, float32 storage",
        "log_vars": log_vars,
        "parameters_without_gradient": no_grad,
        "parameter_count": sum(p.numel() for p in model.parameters()),
    }
    save_case(args.out, name, weights, io, meta)
    print(name, "loss", log_vars["loss"], "no-grad", no_grad)


# ---------- DyVM micro case -------------------------------------------------------------------------
DYVM_BACKBONE = dict(img_size=96, patch_size=16, embed_dim=32, depth=4, out_indices=[0, 1, 2, 23],
                     pruning_loc=[1, 2, 3], token_ratio=[0.8, 0.8 ** 2, 0.8 ** 3])
DYVM_DECODE = MICRO_DECODE
DYVM_AUX = MICRO_AUX
# Direction gate pattern forced through the block_head biases: per block, per direction, the
# decision for [image 0, image 1] (1 = computed).
DYVM_GATES = {0: ([1, 1], [1, 1]), 1: ([1, 0], [1, 1]), 2: ([1, 1], [0, 0]), 3: ([1, 0], [0, 0])}


class DyvmProbe:
    """Hooks recording what the official DyVM forward computes (no code changed)."""

    def __init__(self, model):
        bb = model.backbone
        self.logp, self.topk, self.tokens, self.heads = [], [], {}, {}
        self.handles = []
        for s, p in enumerate(bb.score_predictors):
            self.handles.append(p.register_forward_hook(lambda m, i, o: self.logp.append(o.detach())))
        for i, layer in enumerate(bb.layers):
            self.handles.append(layer.register_forward_pre_hook(
                lambda m, a, kw=None, i=i: self.tokens.__setitem__(i, a[0].shape[1])))
            self.handles.append(layer.mixer.block_head.register_forward_hook(
                lambda m, a, o, i=i: self.heads.__setitem__(i, o.detach()[:, 0, :])))
        self._topk = torch.topk

    def __enter__(self):
        def topk(*a, **k):
            r = self._topk(*a, **k)
            self.topk.append(r.indices.detach())
            return r
        torch.topk = topk
        return self

    def __exit__(self, *exc):
        torch.topk = self._topk
        for h in self.handles:
            h.remove()


class NoiseRecorder:
    """Records every Tensor.exponential_ draw and every F.gumbel_softmax result during a forward."""

    def __init__(self):
        self.draws, self.gumbel = [], []

    def __enter__(self):
        self._exp, self._gs = torch.Tensor.exponential_, F.gumbel_softmax
        rec = self

        def exponential_(t, *a, **k):
            r = rec._exp(t, *a, **k)
            rec.draws.append(r.detach().clone())
            return r

        def gumbel_softmax(*a, **k):
            r = rec._gs(*a, **k)
            rec.gumbel.append(r.detach().clone())
            return r

        torch.Tensor.exponential_ = exponential_
        F.gumbel_softmax = gumbel_softmax
        return self

    def __exit__(self, *exc):
        torch.Tensor.exponential_ = self._exp
        F.gumbel_softmax = self._gs


def dyvm_train(model, weights, images, labels, seed):
    """DyVM's own EncoderDecoder.forward_train (its bundled mmseg), with the random draws recorded."""
    bb = model.backbone
    load_weights(model, weights, torch.float64)
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    B = images.shape[0]
    io = {}
    with keep_float64(), NoiseRecorder() as rec, DyvmProbe(model) as probe:
        cap = Capture(model)
        losses = model.forward_train(images.double(), [{} for _ in range(B)], labels[:, None])
        cap.close()
        loss, log_vars = model._parse_losses(losses)
        loss.backward()
    feats, token_ratio_loss, block_ratio_loss = cap.out["features"]
    # Draw order: per block i: [token stage's gumbel_softmax draw if i in pruning_loc], then the
    # block's gate draws (two: G1, G2).
    draws = list(rec.draws)
    stage = 0
    depth = len(bb.layers)
    margins_tok, margins_gate, dirs = [], [], []
    for i in range(depth):
        if i in bb.pruning_loc:
            e = draws.pop(0)
            G = -e.log()
            io[f"train.noise.token.{stage}"] = f32(G)
            lp = probe.logp[stage]
            io[f"train.prune.{stage}.logp"] = f32(lp)
            dec = rec.gumbel[stage][:, :, 0]
            z = lp + G
            margins_tok.append(float((z[..., 0] - z[..., 1]).abs().min()))
            prev = torch.ones_like(dec) if stage == 0 else io[f"train.prune.{stage-1}.decision"].double()
            io[f"train.prune.{stage}.decision"] = (dec.round() * prev).to(torch.int64)
            assert torch.equal(io[f"train.prune.{stage}.decision"], ((z[..., 0] >= z[..., 1]).double() * prev).to(torch.int64))
            stage += 1
        e1, e2 = draws.pop(0), draws.pop(0)
        noise = (-e1.log()) - (-e2.log())  # [B, 1, 2]
        io[f"train.noise.block.{i}"] = f32(noise[:, 0, :])
        logit = probe.heads[i]
        io[f"train.block.{i}.head_logits"] = f32(logit)
        margins_gate.append(float((logit + noise[:, 0, :]).abs().min()))
        dirs.append(((logit + noise[:, 0, :]) > 0).to(torch.int64))
    assert not draws, len(draws)
    io["train.directions"] = torch.stack(dirs)
    for i, f in enumerate(feats):
        io[f"train.features.{i}"] = f32(f)
    io["train.decode_logits"] = f32(cap.out["decode"])
    io["train.aux_logits"] = f32(cap.out["aux"])
    io["train.loss_decode"] = f32(losses["decode.loss_ce"].reshape(1))
    io["train.loss_aux"] = f32(losses["aux.loss_ce"].reshape(1))
    io["train.loss_token_ratio"] = f32(losses["token_ratio_loss"].reshape(1))
    io["train.loss_block_ratio"] = f32(losses["block_ratio_loss"].reshape(1))
    io["train.loss"] = f32(loss.reshape(1))
    assert torch.allclose(mmseg_ce(cap.out["decode"], labels, 1.0), losses["decode.loss_ce"], rtol=1e-12)
    assert torch.allclose(mmseg_ce(cap.out["aux"], labels, 0.4), losses["aux.loss_ce"], rtol=1e-12)
    io["train.tokens"] = torch.tensor([probe.tokens[i] for i in range(depth)], dtype=torch.int64)
    for k, p in model.named_parameters():
        io[f"train.grad.{k}"] = f32(p.grad if p.grad is not None else torch.zeros_like(p))
    for k, v in model.state_dict().items():
        if "running_" in k:
            io[f"train.after.{k}"] = f32(v)
    meta = {
        "mode": "train: DyVM's EncoderDecoder.forward_train (bundled mmseg) + backward, noise recorded",
        "seed": seed,
        "log_vars": {k: float(v) for k, v in log_vars.items()},
        "tokens_kept_per_stage": [io[f"train.prune.{s}.decision"].sum(1).tolist() for s in range(stage)],
        "min_token_decision_margin": min(margins_tok),
        "min_gate_margin": min(margins_gate),
        "parameters_without_gradient": [k for k, p in model.named_parameters() if p.grad is None],
    }
    return io, meta


def run_dyvm_micro(args, name, seed):
    seg = import_dyvm(args.dyvm)
    config_name = "upernet_vim_tiny_24_512_slide_60k"
    mcfg = official_model_cfg(seg, config_name, DYVM_BACKBONE, DYVM_DECODE, DYVM_AUX)
    torch.manual_seed(seed)
    model = build(mcfg)
    perturb(model, seed + 1)
    bb = model.backbone
    D = bb.embed_dim
    g = torch.Generator().manual_seed(seed + 3)
    with torch.no_grad():
        # predictors and direction heads at unit gain, so decisions depend on the data
        for p in bb.score_predictors:
            for mod in p.modules():
                if isinstance(mod, nn.Linear):
                    mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) / math.sqrt(mod.weight.shape[1]))
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
        for layer in bb.layers:
            w = layer.mixer.block_head.weight
            w.copy_(torch.randn(w.shape, generator=g) / math.sqrt(w.shape[1]))
    B, S, K = 2, 96, 5
    images, labels = micro_images(seed + 2, B, S, K)
    model = model.double()
    # Place each block's gate biases so that the decisions follow DYVM_GATES with margin >= 0.5.
    margins = []
    with keep_float64():
        for i in range(len(bb.layers)):
            weights = weights_of(model)
            load_weights(model, weights, torch.float64)
            model.eval()
            with DyvmProbe(model) as probe, torch.no_grad():
                model.encode_decode(images.double(), [{}] * B)
            head = bb.layers[i].mixer.block_head
            v = probe.heads[i] - head.bias.detach()  # logits without bias: [B, 2]
            with torch.no_grad():
                for d in range(2):
                    want = DYVM_GATES[i][d]
                    col = v[:, d]
                    if want == [1, 1]:
                        b = -col.min() + 1.0
                    elif want == [0, 0]:
                        b = -col.max() - 1.0
                    else:
                        on, off = want.index(1), want.index(0)
                        if col[on] < col[off]:
                            head.weight[d].neg_()
                            col = -col
                        gap = float(col[on] - col[off])
                        if gap < 2.0:
                            head.weight[d].mul_(2.0 / gap)
                            col = col * (2.0 / gap)
                        b = -(col[on] + col[off]) / 2
                    head.bias[d] = b
    weights = weights_of(model)
    load_weights(model, weights, torch.float64)
    io = {"input": images, "labels": labels}
    with keep_float64():
        model.eval()
        with DyvmProbe(model) as probe:
            eio, outs, seg_logits = eval_step(model, images.double(), prefix="")
    io.update(eio)
    L = (S // 16) ** 2
    keep_counts = [int(r * L) for r in bb.token_ratio]
    min_gap = []
    for s, (lp, idx) in enumerate(zip(probe.logp, probe.topk)):
        io[f"prune.{s}.logp"] = f32(lp)
        io[f"prune.{s}.keep"] = torch.sort(idx, dim=1).values.to(torch.int64)
        assert idx.shape[1] == keep_counts[s]
        score = lp[:, :, 0]
        # gap between the last kept and the best dropped score among the candidates
        gaps = []
        prev = None if s == 0 else io[f"prune.{s-1}.keep"]
        for b in range(B):
            cand = torch.arange(L) if prev is None else prev[b]
            sc = score[b, cand].sort(descending=True).values
            gaps.append(float(sc[keep_counts[s] - 1] - sc[keep_counts[s]]))
        min_gap.append(min(gaps))
    heads = torch.stack([probe.heads[i] for i in range(len(bb.layers))])  # [depth, B, 2]
    for i in range(len(bb.layers)):
        io[f"block.{i}.head_logits"] = f32(probe.heads[i])
    io["directions"] = (heads > 0).to(torch.int64)
    for i, (fw, bw) in DYVM_GATES.items():
        assert io["directions"][i, :, 0].tolist() == fw and io["directions"][i, :, 1].tolist() == bw, i
    io["tokens"] = torch.tensor([probe.tokens[i] for i in range(len(bb.layers))], dtype=torch.int64)
    meta = {
        "case": name,
        "official_config": f"NUS-HPC-AI-Lab/DyVM Semantic_Segmentation/seg/configs/vim/upernet/{config_name}.py",
        "overrides": {"backbone": DYVM_BACKBONE, "decode_head": DYVM_DECODE, "auxiliary_head": DYVM_AUX,
                      "fixture_wide": "backbone.drop_path_rate 0.0; heads dropout_ratio 0.0; heads norm_cfg BN (was SyncBN)"},
        "model": cfg_to_json(mcfg),
        "effective": effective_flags(model),
        "batch": B, "img_size": S, "num_patches": L, "num_classes": K,
        "mode": "eval (EncoderDecoder.encode_decode)",
        "precision": "float64 run, float32 storage",
        "token_ratio": list(bb.token_ratio), "keep_tokens": keep_counts,
        "tokens_seen_per_block": io["tokens"].tolist(),
        "direction_gates": {str(k): {"forward": v[0], "backward": v[1]} for k, v in DYVM_GATES.items()},
        "min_abs_gate_logit": float(heads.abs().min()),
        "min_topk_gap": min_gap,
    }
    tio, tmeta = dyvm_train(model, weights, images, labels, seed + 4)
    io.update(tio)
    meta["train"] = tmeta
    save_case(args.out, name, weights, io, meta)
    print(name, "tokens", io["tokens"].tolist(), "min gap", min_gap, "min |gate|", meta["min_abs_gate_logit"])


# ---------- Vim-T at 512 (formula weights) ----------------------------------------------------------
TINY_STRIDES = {"features.0": 8, "features.1": 4, "decode_logits": 8}


def run_vim_tiny(args, name):
    seg = import_vim(args.vim)
    config_name = "upernet_vim_tiny_24_512_slide_60k"
    mcfg = official_model_cfg(seg, config_name)
    torch.manual_seed(0)
    model = build(mcfg)
    dtype = torch.float64 if not args.tiny_float32 else torch.float32
    weights, checks = {}, {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        if formula_rule(k, tuple(v.shape)) is None:
            continue
        weights[k] = formula_tensor(k, tuple(v.shape))
        checks[f"check.{k}"] = weights[k].reshape(-1)[:8].clone()
    model = model.to(dtype)
    load_weights(model, weights, dtype)
    r = uniform_pm1("input", 3 * 512 * 512)
    image = torch.from_numpy(((1.5 * r) + 0.0).astype(np.float32).reshape(1, 3, 512, 512))
    t0 = time.time()
    with keep_float64():
        eio, outs, seg_logits = eval_step(model, image.to(dtype), prefix="")
    elapsed = time.time() - t0
    io = dict(checks)
    io["input.sample"] = image[:, :, ::64, ::64].contiguous()
    io["input.sum"] = image.double().sum().reshape(1).to(torch.float32)
    feats = outs["features"]
    io["features.3"] = f32(feats[3])
    io["features.2"] = f32(feats[2])
    for key, t in (("features.0", feats[0]), ("features.1", feats[1]), ("decode_logits", outs["decode"])):
        s = TINY_STRIDES[key]
        io[f"{key}.mean"] = f32(t.mean(dim=(2, 3)))
        io[f"{key}.sub{s}"] = f32(t[:, :, ::s, ::s])
    dl = outs["decode"]
    top2 = dl.topk(2, dim=1).values
    io["pred"] = dl.argmax(dim=1).to(torch.int64)
    io["pred_margin"] = f32(top2[:, 0] - top2[:, 1])
    classes, counts = torch.unique(io["pred"], return_counts=True)
    meta = {
        "case": name,
        "official_config": f"hustvl/Vim@bb3928b seg/configs/vim/upernet/{config_name}.py",
        "overrides": {"fixture_wide": "backbone.drop_path_rate 0.0; heads dropout_ratio 0.0; heads norm_cfg BN (was SyncBN)"},
        "model": cfg_to_json(mcfg),
        "effective": effective_flags(model),
        "batch": 1, "img_size": 512, "num_classes": 150,
        "mode": "eval (EncoderDecoder.encode_decode, whole image)",
        "precision": str(dtype).replace("torch.", "") + " run, float32 storage",
        "weights": "formula (see README); rope buffers: none (if_rope False)",
        "input": "formula: input[0, c, y, x] = float32(1.5 * r_i) with name 'input', i = (c*512 + y)*512 + x",
        "strides": TINY_STRIDES,
        "stats": {k: {"mean": float(v.double().mean()), "std": float(v.double().std())}
                  for k, v in (("features.0", feats[0]), ("features.1", feats[1]), ("features.2", feats[2]),
                               ("features.3", feats[3]), ("decode_logits", dl))},
        "pred_classes_present": len(classes),
        "pred_largest_class_fraction": float(counts.max()) / io["pred"].numel(),
        "pred_margin_min": float(io["pred_margin"].min()),
        "pred_pixels_margin_below_1e-3": int((io["pred_margin"] < 1e-3).sum()),
    }
    save_case(args.out, name, None, io, meta)
    print(name, f"{elapsed:.1f}s", json.dumps(meta["stats"]), "classes", len(classes))


# ---------- layer decay ----------------------------------------------------------------------------
def run_layer_decay(args):
    seg = import_vim(args.vim)
    from mmcv_custom.layer_decay_optimizer_constructor import LayerDecayOptimizerConstructor
    from mmcv import Config
    cfg = Config.fromfile(os.path.join(seg, "configs", "vim", "upernet", "upernet_vim_tiny_24_512_slide_60k.py"))
    mcfg = official_model_cfg(seg, "upernet_vim_tiny_24_512_slide_60k")
    model = build(mcfg)
    opt = dict(cfg.optimizer)
    paramwise_cfg = opt.pop("paramwise_cfg")
    opt.pop("constructor")
    ctor = LayerDecayOptimizerConstructor(opt, paramwise_cfg)
    params = []
    with contextlib.redirect_stdout(io.StringIO()):
        ctor.add_params(params, model)
    rows = {}
    for group in params:
        for n in group["param_names"]:
            rows[n] = (group["group_name"], group["lr_scale"], group["weight_decay"])
    names = [n for n, _ in model.named_parameters()]
    assert set(names) == set(rows)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}

    def pattern(n):
        parts = n.split(".")
        if n.startswith("backbone.layers."):
            parts[2] = "N"
        return ".".join(parts)

    summary = {}
    for n in names:
        key = (pattern(n), rows[n])
        summary.setdefault(key, []).append(n)
    lines = [
        "# Layer-wise lr decay as the official Vim segmentation recipe applies it",
        "",
        "Computed by `make_seg_fixtures.py --layer-decay`: hustvl/Vim@bb3928b",
        "`seg/mmcv_custom/layer_decay_optimizer_constructor.py` (`LayerDecayOptimizerConstructor.add_params`,",
        "run unchanged) on the parameters of the EncoderDecoder built from",
        "`seg/configs/vim/upernet/upernet_vim_tiny_24_512_slide_60k.py` (optimizer: AdamW lr 1e-4,",
        f"weight_decay {opt['weight_decay']}, paramwise_cfg {dict(paramwise_cfg)}).",
        "",
        "How the official function decides (num_layers = 24 + 2 = 26, rate 0.92):",
        "- `lr_scale = 0.92 ** (26 - layer_id - 1)`; `layer_id` from `get_num_layer_for_vit(name, 26)`:",
        "  0 for `backbone.cls_token`, `backbone.mask_token`, `backbone.pos_embed` and `backbone.patch_embed*`;",
        "  `int(name.split('.')[2]) + 1` for names starting with `backbone.blocks`; 25 for everything else.",
        "  Vim's blocks are `backbone.layers.N`, not `backbone.blocks.N`, so **every block gets layer_id 25, i.e.",
        "  lr_scale 1.0: there is no layer-wise decay across the 24 Mamba blocks.** Only pos_embed and",
        "  patch_embed are decayed, by 0.92^25 = %.6f." % (0.92 ** 25),
        "- weight decay 0 when `len(param.shape) == 1` or the name ends in `.bias` or the name is exactly",
        "  `pos_embed`/`cls_token`. The names carry the `backbone.` prefix, so that last test never fires:",
        "  **`backbone.pos_embed` ([1, 1024, 192]) gets weight decay 0.05.** So do `A_log`/`A_b_log`",
        "  (2-D; Mamba marks them `_no_weight_decay`, which this constructor ignores), `conv1d(_b).weight`,",
        "  `x_proj`, `dt_proj`, `in_proj`, `out_proj` weights, the fpn ConvTranspose weights and all conv",
        "  weights of the heads. `D`/`D_b`, RMSNorm/BN weights and all biases get 0.",
        "- lr is `lr_scale * 1e-4` per group; mmcv's poly schedule later rescales each group from its own",
        "  initial lr, so the ratios persist.",
        "",
        "## Summary (`N` = any block index 0..23)",
        "",
        "| parameter (pattern) | count | group | lr_scale | weight_decay |",
        "|---|---|---|---|---|",
    ]
    for (pat, (grp, scale, wd)), members in summary.items():
        grp_pat = grp
        lines.append(f"| `{pat}` | {len(members)} | `{grp_pat}` | {scale:.6f} | {wd} |")
    lines += ["", "## Every parameter", "", "| parameter | shape | group | lr_scale | weight_decay |", "|---|---|---|---|---|"]
    for n in names:
        grp, scale, wd = rows[n]
        lines.append(f"| `{n}` | {list(shapes[n])} | `{grp}` | {scale:.6f} | {wd} |")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "layer-decay.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("layer-decay.md:", len(names), "parameters,", len(params), "groups")


# ================================================================================================
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vim", default=os.environ.get("VIM_SRC", "/work/vim-bb3928b"))
    ap.add_argument("--dyvm", default=os.environ.get("DYVM_SRC", "/work/dyvm-src"))
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--layer-decay", action="store_true", help="only write layer-decay.md")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--tiny-float32", action="store_true", help="run upernet-vim-tiny-512 in float32")
    ap.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.vim, args.dyvm, args.out = map(os.path.abspath, (args.vim, args.dyvm, args.out))
    if args.one:
        if args.one == "layer-decay":
            run_layer_decay(args)
        elif args.one == "upernet-vim-micro":
            run_vim_micro(args, args.one, "upernet_vim_tiny_24_512_slide_60k", 10)
        elif args.one == "upernet-vim-micro-rope":
            run_vim_micro(args, args.one, "upernet_vim_small_24_512_slide_60k", 20)
        elif args.one == "upernet-dyvm-micro":
            run_dyvm_micro(args, args.one, 30)
        elif args.one == "upernet-vim-tiny-512":
            run_vim_tiny(args, args.one)
        else:
            raise SystemExit("unknown case " + args.one)
        return
    todo = ["layer-decay"] if args.layer_decay else args.cases.split(",") + ["layer-decay"]
    for case in todo:
        cmd = [sys.executable, os.path.abspath(__file__), "--one", case, "--vim", args.vim, "--dyvm", args.dyvm,
               "--out", args.out, "--threads", str(args.threads)] + (["--tiny-float32"] if args.tiny_float32 else [])
        t0 = time.time()
        subprocess.run(cmd, check=True)
        print(f"[{case}] {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
