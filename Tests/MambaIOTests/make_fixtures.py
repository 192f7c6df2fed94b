"""Writes the small test files of MambaIOTests/Resources without PyTorch.

torch.save's zip layout is emulated with the standard library: `<prefix>/data.pkl` pickled at
protocol 2 with persistent ids ('storage', torch.<Type>Storage, key, 'cpu', numel) and tensors
rebuilt by torch._utils._rebuild_tensor_v2, storages as `<prefix>/data/<key>`, entries stored.
Run from this folder: python3 make_fixtures.py
"""
import argparse, collections, io, pickle, struct, sys, types, zipfile
import numpy as np
from PIL import Image

# Stand-ins whose module/name are what torch.save writes, so pickle emits the same GLOBALs.
torch = types.ModuleType("torch"); sys.modules["torch"] = torch
utils = types.ModuleType("torch._utils"); sys.modules["torch._utils"] = utils
for name in ["FloatStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage", "LongStorage"]:
    setattr(torch, name, type(name, (), {"__module__": "torch"}))
def _rebuild_tensor_v2(*args): pass
_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2

class Storage:
    def __init__(self, key, kind, data): self.key, self.kind, self.data = key, kind, data
class Tensor:
    def __init__(self, storage, offset, size, stride): self.args = (storage, offset, size, stride)
    def __reduce__(self):
        s, o, size, stride = self.args
        return (_rebuild_tensor_v2, (s, o, tuple(size), tuple(stride), False, collections.OrderedDict()))

class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            numel = len(obj.data) // {"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "DoubleStorage": 8, "LongStorage": 8}[obj.kind]
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", numel)
        return None

def save(obj, storages, path, prefix="archive"):
    buf = io.BytesIO(); TorchPickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", buf.getvalue())
        z.writestr(f"{prefix}/byteorder", "little")
        for s in storages: z.writestr(f"{prefix}/data/{s.key}", s.data)
        z.writestr(f"{prefix}/version", "3\n")

def bf16(a):  # round-to-nearest-even bfloat16 bytes of float32 values
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16).tobytes()

w = np.arange(12, dtype=np.float32).reshape(3, 4) / 8 - 0.5           # exact in every dtype used
s_w = Storage("0", "FloatStorage", w.tobytes())
s_half = Storage("1", "HalfStorage", np.array([1.5, -2.25, 65504, 0.000061035156], np.float16).tobytes())
s_bf = Storage("2", "BFloat16Storage", bf16([1.0, -3.5, 2.0 ** 100, 0.15625]))
s_dbl = Storage("3", "DoubleStorage", np.array([0.1, -7.0], np.float64).tobytes())
s_long = Storage("4", "LongStorage", np.array([5], np.int64).tobytes())
shared = Storage("5", "FloatStorage", np.arange(10, dtype=np.float32).tobytes())
model = collections.OrderedDict([
    ("module.weight", Tensor(s_w, 0, (3, 4), (4, 1))),
    ("module.half", Tensor(s_half, 0, (4,), (1,))),
    ("module.bf16", Tensor(s_bf, 0, (2, 2), (2, 1))),
    ("module.double", Tensor(s_dbl, 0, (2,), (1,))),
    ("module.tail", Tensor(shared, 6, (4,), (1,))),                    # a view at storage offset 6
    ("module.transposed", Tensor(s_w, 0, (4, 3), (1, 4))),             # non-contiguous: w.T
    ("module.num_batches", Tensor(s_long, 0, (), ())),
])
ema = collections.OrderedDict([("module.weight", Tensor(shared, 0, (3,), (1,)))])
ns = argparse.Namespace(model="vim_tiny", lr=0.001, epochs=300, no_amp=True, resume="", drop_path=None, betas=[0.9, 0.999])
checkpoint = {
    "model": model,
    "optimizer": {"state": {0: {"step": Tensor(s_long, 0, (), ()), "exp_avg": Tensor(s_w, 0, (3, 4), (4, 1))}},
                  "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.0, "amsgrad": False, "params": [0, 1], "foreach": None}]},
    "lr_scheduler": {"t_initial": 300, "lr_min": 1e-5, "base_values": [1e-3], "noise_range_t": None, "t_in_epochs": True},
    "epoch": 299,
    "model_ema": ema,
    "scaler": "none",
    "args": ns,
}
save(checkpoint, [s_w, s_half, s_bf, s_dbl, s_long, shared], "Resources/training-checkpoint.pth", prefix="vim_t_midclstok")
save({"model_ema": ema}, [shared], "Resources/ema-only.pth")

# A checkpoint that asks for os.system: the reader must refuse it by name.
class Evil:
    def __reduce__(self): return (__import__("os").system, ("echo pwned",))
buf = io.BytesIO(); pickle.Pickler(buf, protocol=2).dump({"model": Evil()})
with zipfile.ZipFile("Resources/evil.pth", "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", buf.getvalue())

# Small images in each PNG colour type and a greyscale JPEG, and what PIL's convert("RGB") gives.
rng = np.random.default_rng(0)
rgb = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
images = {
    "grey.png": Image.fromarray(rgb[..., 0], "L"),
    "rgba.png": Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (9, 13), dtype=np.uint8)]), "RGBA"),
    "palette.png": Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=17),
    "grey-alpha.png": Image.fromarray(np.dstack([rgb[..., 1], rgb[..., 2]]), "LA"),
    "rgb.png": Image.fromarray(rgb, "RGB"),
}
for name, im in images.items(): im.save("Resources/" + name)
Image.fromarray(rgb[..., 0], "L").save("Resources/grey.jpg", quality=90)
Image.fromarray(rgb, "RGB").resize((130, 90), Image.NEAREST).save("Resources/rgb.jpg", quality=85)
header, blobs, offset = {}, [], 0
for name in list(images) + ["grey.jpg", "rgb.jpg"]:
    a = np.asarray(Image.open("Resources/" + name).convert("RGB"))
    header[name] = {"dtype": "U8", "shape": list(a.shape), "data_offsets": [offset, offset + a.size]}
    blobs.append(a.tobytes()); offset += a.size
h = json_bytes = __import__("json").dumps(header).encode()
h += b" " * (-len(h) % 8)
with open("Resources/decoded.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h); [f.write(b) for b in blobs]
# And what the eval transform gives for the JPEG at 64 px (resize to 73, crop 64).
import PIL.Image as I
im = I.open("Resources/rgb.jpg").convert("RGB")
short = min(im.size); size = int(64 / 0.875)
w, h2 = im.size
nw, nh = (size, int(size * h2 / w)) if w <= h2 else (int(size * w / h2), size)
r = im.resize((nw, nh), I.BICUBIC)
top, left = int(round((nh - 64) / 2.0)), int(round((nw - 64) / 2.0))
c = np.asarray(r.crop((left, top, left + 64, top + 64)), np.float32) / 255
c = (c - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
c = np.ascontiguousarray(c.transpose(2, 0, 1).astype(np.float32))
h = __import__("json").dumps({"pre": {"dtype": "F32", "shape": list(c.shape), "data_offsets": [0, c.nbytes]}}).encode()
h += b" " * (-len(h) % 8)
with open("Resources/rgb-eval64.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h); f.write(c.tobytes())
print("ok")
