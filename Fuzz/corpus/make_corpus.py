"""Writes the seed corpora of the fuzz targets: a few small valid files per target.

Only the standard library and numpy: torch.save's layout is written by hand (a stored zip with
`archive/data.pkl` and `archive/data/<key>`), with stand-in classes whose module and name are
what torch writes, as Tests/MambaIOTests/make_fixtures.py does; PNGs are written with zlib.
The cifar and image seeds start with the selector byte their target reads first.
Run from this folder: python3 make_corpus.py
"""
import argparse, collections, io, json, os, pickle, shutil, struct, sys, types, zipfile, zlib
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
resources = os.path.join(here, "..", "..", "Tests", "MambaIOTests", "Resources")

def put(target, name, data):
    os.makedirs(os.path.join(here, target), exist_ok=True)
    with open(os.path.join(here, target, name), "wb") as f:
        f.write(data)

# --- torch.save stand-ins -------------------------------------------------------------------
torch = types.ModuleType("torch"); sys.modules["torch"] = torch
utils = types.ModuleType("torch._utils"); sys.modules["torch._utils"] = utils
for kind in ["FloatStorage", "HalfStorage", "LongStorage"]:
    setattr(torch, kind, type(kind, (), {"__module__": "torch"}))
def _rebuild_tensor_v2(*args): pass
_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
def _rebuild_parameter(*args): pass
_rebuild_parameter.__module__ = "torch._utils"
utils._rebuild_parameter = _rebuild_parameter

class Storage:
    def __init__(self, key, kind, data): self.key, self.kind, self.data = key, kind, data
class Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.args, self.parameter = (storage, offset, size, stride), parameter
    def __reduce__(self):
        s, o, size, stride = self.args
        t = (_rebuild_tensor_v2, (s, o, tuple(size), tuple(stride), False, collections.OrderedDict()))
        return (_rebuild_parameter, (Tensor(*self.args), True, collections.OrderedDict())) if self.parameter else t

class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            size = {"FloatStorage": 4, "HalfStorage": 2, "LongStorage": 8}[obj.kind]
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", len(obj.data) // size)
        return None

def torch_pickle(obj):
    buf = io.BytesIO(); TorchPickler(buf, protocol=2).dump(obj); return buf.getvalue()

def torch_save(obj, storages):
    buf = io.BytesIO()
    entries = [("archive/data.pkl", torch_pickle(obj)), ("archive/byteorder", b"little")]
    entries += [(f"archive/data/{s.key}", s.data) for s in storages] + [("archive/version", b"3\n")]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)   # same bytes on every run
    return buf.getvalue()

w = Storage("0", "FloatStorage", np.arange(6, dtype=np.float32).tobytes())
h = Storage("1", "HalfStorage", np.array([1.5, -2], np.float16).tobytes())
n = Storage("2", "LongStorage", np.array([7], np.int64).tobytes())
state = collections.OrderedDict([
    ("weight", Tensor(w, 0, [2, 3], [3, 1])),
    ("transposed", Tensor(w, 0, [3, 2], [1, 3])),
    ("tail", Tensor(w, 4, [2], [1])),
    ("expanded", Tensor(w, 0, [4, 3], [0, 1])),
    ("half", Tensor(h, 0, [2], [1])),
    ("steps", Tensor(n, 0, [], [])),
])
args = argparse.Namespace(model="vim_tiny", epochs=300, lr=5e-4, drop_path=0.05, data_set="IMNET")
checkpoint = {"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
              "epoch": 3, "args": args, "scaler": "none"}
put("pth", "state-dict.pth", torch_save(state, [w, h, n]))
put("pth", "checkpoint.pth", torch_save(checkpoint, [w, h, n]))
put("pth", "parameter.pth", torch_save({"model_ema": {"w": Tensor(w, 0, [6], [1], parameter=True)}}, [w]))

# --- pickles: torch's and numpy's -----------------------------------------------------------
put("pickle", "torch-checkpoint.pkl", torch_pickle(checkpoint))
put("pickle", "torch-state-dict.pkl", torch_pickle(state))
array = np.arange(6, dtype=np.uint8).reshape(2, 3)
for protocol in [2, 3, 4, 5]:
    put("pickle", f"numpy-p{protocol}.pkl", pickle.dumps({b"data": array, b"labels": [1, 2], "name": "x"}, protocol=protocol))
put("pickle", "numpy-empty.pkl", pickle.dumps({"data": np.zeros((0, 3072), np.uint8), "labels": []}, protocol=2))
put("pickle", "numpy-scalar.pkl", pickle.dumps([np.float64(1.5), np.int64(-3), (1, 2.5, None, True)], protocol=2))

# --- safetensors ----------------------------------------------------------------------------
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, a in tensors.items():
        dtype = {np.float32: "F32", np.float16: "F16", np.int64: "I64", np.uint8: "U8", np.float64: "F64"}[a.dtype.type]
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [len(data), len(data) + a.nbytes]}
        data += a.tobytes()
    if metadata: header["__metadata__"] = metadata
    j = json.dumps(header).encode()
    j += b" " * (-len(j) % 8)
    return struct.pack("<Q", len(j)) + j + data
put("safetensors", "tensors.safetensors", safetensors({
    "w": np.arange(6, dtype=np.float32).reshape(2, 3), "h": np.array([1.5, -2], np.float16),
    "i": np.array([7, -1], np.int64), "empty": np.zeros((0, 4), np.float32)}, {"format": "pt"}))
put("safetensors", "one.safetensors", safetensors({"x": np.array(3.25, np.float64)}))

# --- CIFAR: selector byte (bit 0 python, bit 1 CIFAR-100), then one batch -------------------
pixels = (np.arange(2 * 3072) % 251).astype(np.uint8).reshape(2, 3072)
put("cifar", "binary-10.bin", bytes([0]) + b"".join(bytes([l]) + p.tobytes() for l, p in zip([3, 9], pixels)))
put("cifar", "binary-100.bin", bytes([2]) + b"".join(bytes([l // 5, l]) + p.tobytes() for l, p in zip([42, 99], pixels)))
put("cifar", "python-10.pkl", bytes([1]) + pickle.dumps({b"batch_label": b"x", b"labels": [3, 9], b"data": pixels}, protocol=2))
put("cifar", "python-100.pkl", bytes([3]) + pickle.dumps({b"fine_labels": [42, 99], b"coarse_labels": [8, 19], b"data": pixels}, protocol=2))
put("cifar", "python-empty.pkl", bytes([1]) + pickle.dumps({"labels": [], "data": np.zeros((0, 3072), np.uint8)}, protocol=2))

# --- images: selector byte (crop size), then a PNG or JPEG ----------------------------------
def png(width, height, colour, depth, rows, palette=None, interlace=0):
    def chunk(kind, body): return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))
    if palette: out += chunk(b"PLTE", palette)
    return out + chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + r for r in rows))) + chunk(b"IEND", b"")
rgb = [bytes((x * 40 + y * 7 + c * 90) % 256 for x in range(5) for c in range(3)) for y in range(4)]
put("image", "rgb.png", bytes([7]) + png(5, 4, 2, 8, rgb))
put("image", "grey16.png", bytes([255]) + png(3, 2, 0, 16, [bytes(range(6)), bytes(range(6, 12))]))
put("image", "rgba.png", bytes([12]) + png(2, 2, 6, 8, [bytes(range(8)), bytes(range(8, 16))]))
put("image", "palette.png", bytes([3]) + png(4, 1, 3, 2, [bytes([0b00011011])], palette=bytes(range(12))))
put("image", "tall.png", bytes([9]) + png(1, 40, 0, 8, [bytes([y * 6]) for y in range(40)]))
for name in ["rgb.jpg", "grey.jpg"]:
    with open(os.path.join(resources, name), "rb") as f:
        put("image", name, bytes([30]) + f.read())
# --- model configs: the fixtures' JSON, and small ones of each kind the format has ---------
models = os.path.join(here, "..", "..", "Tests", "VisionMambaTests", "Resources")
for name in sorted(os.listdir(models)):
    if name.endswith(".json"):
        with open(os.path.join(models, name), "rb") as f:
            put("config", name, f.read())
small = {"img_size": 16, "patch_size": 4, "stride": 4, "embed_dim": 8, "depth": 2, "num_classes": 3}
put("config", "small.json", json.dumps(small).encode())
put("config", "first.json", json.dumps(dict(small, cls_token_position="first", d_state=4, expand=1)).encode())
put("config", "fusion.json", json.dumps(dict(small, fusion={"strategy": "all", "layer": 0, "tokens": 2})).encode())
put("config", "dyvm.json", json.dumps(dict(small, dyvm={"pruning_loc": [1], "token_keep_ratio": 0.5})).encode())
print("ok")
