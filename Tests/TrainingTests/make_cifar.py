"""Writes tiny CIFAR-shaped files in both distributed formats (binary and python pickles) for
the dataset tests: 4 images per batch, pixel values and labels derived from the position.
Run from this folder: python3 make_cifar.py"""
import os, pickle
import numpy as np

def images(n, start):
    return np.array([[(start + i) * 7 + p for p in range(3072)] for i in range(n)], dtype=np.int64) % 251

root = "Resources/cifar"
for d in ["cifar-10-batches-bin", "cifar-10-batches-py", "cifar-100-binary", "cifar-100-python"]:
    os.makedirs(f"{root}/{d}", exist_ok=True)
for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
    x = images(4, 4 * k).astype(np.uint8)
    labels = [(4 * k + i) % 10 for i in range(4)]
    with open(f"{root}/cifar-10-batches-bin/{name}.bin", "wb") as f:
        for i in range(4): f.write(bytes([labels[i]]) + x[i].tobytes())
    with open(f"{root}/cifar-10-batches-py/{name}", "wb") as f:
        pickle.dump({b"batch_label": b"fake", b"labels": labels, b"data": x, b"filenames": [b"a"] * 4}, f, protocol=2)
for k, name in enumerate(["train", "test"]):
    x = images(4, 100 + 4 * k).astype(np.uint8)
    fine = [(37 * (4 * k + i)) % 100 for i in range(4)]
    with open(f"{root}/cifar-100-binary/{name}.bin", "wb") as f:
        for i in range(4): f.write(bytes([fine[i] // 5, fine[i]]) + x[i].tobytes())
    with open(f"{root}/cifar-100-python/{name}", "wb") as f:
        pickle.dump({b"fine_labels": fine, b"coarse_labels": [v // 5 for v in fine], b"data": x}, f, protocol=2)
print("ok")
