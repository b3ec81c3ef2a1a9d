"""Tiny datasets in torchvision's on-disk formats, written by the tests (never downloaded).

- MNIST / Fashion-MNIST: big-endian idx files ``<root>/<Folder>/raw/{train,t10k}-{images-idx3,
  labels-idx1}-ubyte`` (magic 0x00000803 / 0x00000801, then the sizes, then uint8 data).
- CIFAR-10: pickled dicts ``<root>/cifar-10-batches-py/data_batch_{1..5}``, ``test_batch``
  (``data``: uint8 ``[N, 3072]`` rows R-plane, G-plane, B-plane; ``labels``: list of int) and
  ``batches.meta`` (``label_names``). torchvision checks their md5 sums:
  :func:`patch_cifar10_md5` points its table at the fake files' sums.

Test files load this one by path (tests run with ``--import-mode=importlib``, so the tests
folder is not importable as a package).
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np

MNIST_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the idx format MNIST uses."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.tobytes())


def write_mnist(root: Path, name: str = "mnist", n_train: int = 40, n_test: int = 20,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Random 28×28 digits (labels ``i % 10``) for MNIST or Fashion-MNIST; returns the arrays."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / MNIST_FOLDERS[name] / "raw"
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays


def write_cifar10(root: Path, per_batch: int = 8, n_test: int = 10, seed: int = 0) -> dict:
    """Five training batches of ``per_batch`` images and a test batch; returns the arrays."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in (np.arange(n) + i) % 10]
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, f)
        arrays[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return arrays


def patch_cifar10_md5(monkeypatch, root: Path) -> None:
    """Make torchvision's CIFAR10 integrity check expect the fake files' md5 sums."""
    from torchvision.datasets import CIFAR10

    folder = Path(root) / "cifar-10-batches-py"

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5(f"data_batch_{i}")]
                                                 for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5("batches.meta")})


def block_network(monkeypatch) -> None:
    """Fail any socket connection that is not to the loopback interface."""
    import socket

    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost") and not isinstance(address, str):
            raise AssertionError(f"a test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)

