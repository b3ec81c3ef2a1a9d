"""Datasets for the command line and examples.

``digits`` (scikit-learn's 1,797 8×8 digits) is bundled and needs no network. MNIST,
Fashion-MNIST and CIFAR-10 are read with torchvision from ``root`` in torchvision's
on-disk layout (``<root>/MNIST/raw/*-idx?-ubyte``, ``<root>/FashionMNIST/raw/…``,
``<root>/cifar-10-batches-py/…``); ``download=True`` lets torchvision fetch them.

Every dataset yields ``(image, label)`` with ``image`` a float tensor ``[C, H, W]``
(:attr:`DatasetSpec.in_shape`) and ``label`` a ``long`` class index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset, TensorDataset

from ..core.validate import positive_int
from ..errors import ConfigError

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "ImageTensorDataset",
    "dataset_spec",
    "load_dataset",
    "load_digits_split",
]


@dataclass(frozen=True)
class DatasetSpec:
    """What a model needs to know about a dataset.

    Attributes:
        name: the command-line name (``digits``, ``mnist``, …).
        in_shape: shape of one image, ``(C, H, W)``.
        num_classes: number of labels.
        bundled: True if it ships with a dependency (no ``root`` or download needed).
        folder: the sub-folder of ``root`` that torchvision reads (``""`` if bundled).
        mean, std: per-channel normalization applied to pixels in [0, 1].
    """

    name: str
    in_shape: tuple[int, int, int]
    num_classes: int
    bundled: bool
    folder: str = ""
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


_SPECS = {
    "digits": DatasetSpec("digits", (1, 8, 8), 10, bundled=True),
    "mnist": DatasetSpec(
        "mnist", (1, 28, 28), 10, bundled=False, folder="MNIST/raw",
        mean=(0.1307,), std=(0.3081,),
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", (1, 28, 28), 10, bundled=False, folder="FashionMNIST/raw",
        mean=(0.2860,), std=(0.3530,),
    ),
    "cifar10": DatasetSpec(
        "cifar10", (3, 32, 32), 10, bundled=False, folder="cifar-10-batches-py",
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    ),
}

#: Dataset names accepted by :func:`load_dataset` and ``snn-singlestep train --dataset``.
DATASETS = tuple(_SPECS)


def dataset_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``.

    Raises:
        ConfigError: ``name`` is not one of :data:`DATASETS`.

    Examples:
        >>> dataset_spec("cifar10").in_shape
        (3, 32, 32)
    """
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"dataset must be one of {', '.join(DATASETS)}; got {name!r}"
        ) from None


class ImageTensorDataset(Dataset):
    """Images kept as ``uint8 [N, C, H, W]``, returned as normalized float ``[C, H, W]``.

    Keeping bytes costs a quarter of the memory of float pixels and avoids PIL per item.

    Args:
        images: ``uint8`` tensor ``[N, C, H, W]``.
        targets: ``long`` tensor ``[N]``.
        mean: per-channel mean subtracted from the pixels scaled to [0, 1].
        std: per-channel standard deviation they are divided by.

    Examples:
        >>> ds = ImageTensorDataset(torch.full((2, 1, 2, 2), 255, dtype=torch.uint8),
        ...                         torch.tensor([3, 4]), mean=(0.5,), std=(0.5,))
        >>> x, y = ds[1]
        >>> x.flatten().tolist(), int(y)
        ([1.0, 1.0, 1.0, 1.0], 4)
    """

    def __init__(
        self,
        images: Tensor,
        targets: Tensor,
        mean: tuple[float, ...] = (),
        std: tuple[float, ...] = (),
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ConfigError(
                f"images must be a uint8 tensor [N, C, H, W], got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if targets.shape != images.shape[:1]:
            raise ConfigError(
                f"targets must have shape [{images.shape[0]}], got {tuple(targets.shape)}"
            )
        channels = images.shape[1]
        self.images = images
        self.targets = targets.long()
        self.mean = torch.tensor(mean or (0.0,) * channels).view(-1, 1, 1)
        self.std = torch.tensor(std or (1.0,) * channels).view(-1, 1, 1)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x = self.images[index].to(torch.float32).div_(255.0)
        return (x - self.mean) / self.std, self.targets[index]


def load_digits_split(
    *, test_size: float = 0.2, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's 1,797 8×8 digits as ``(train, test)`` datasets of ``([64], label)``.

    Pixels are scaled from 0..16 to 0..1; the split is stratified and fixed by ``seed``.

    Examples:
        >>> train, test = load_digits_split()
        >>> len(train), len(test), tuple(train[0][0].shape)
        (1437, 360, (64,))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )

    def as_dataset(features, labels) -> TensorDataset:
        return TensorDataset(
            torch.as_tensor(features / 16.0, dtype=torch.float32),
            torch.as_tensor(labels, dtype=torch.long),
        )

    return as_dataset(x_train, y_train), as_dataset(x_test, y_test)


def _torchvision_split(spec: DatasetSpec, root: str, train: bool, download: bool) -> Dataset:
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST,
           "cifar10": datasets.CIFAR10}[spec.name]
    where = os.path.join(root, spec.folder)
    try:
        raw = cls(root, train=train, download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found [or corrupted]…"
        hint = "" if download else "; pass --download to fetch it"
        raise ConfigError(
            f"{spec.name} {'train' if train else 'test'} split not found or corrupted "
            f"under {where}{hint} ({err})"
        ) from None
    except (AssertionError, OSError, ValueError, TypeError, EOFError, KeyError) as err:
        # torchvision's readers assert on bad idx headers; pickle fails on bad batches.
        raise ConfigError(
            f"cannot read {spec.name} from {where}: {type(err).__name__}: {err or 'bad file'}"
        ) from None
    images = torch.as_tensor(raw.data)
    if images.ndim == 3:  # MNIST-like: [N, H, W]
        images = images.unsqueeze(1)
    else:  # CIFAR: numpy [N, H, W, C]
        images = images.permute(0, 3, 1, 2)
    targets = torch.as_tensor(raw.targets, dtype=torch.long)
    return ImageTensorDataset(images.contiguous(), targets, spec.mean, spec.std)


def _limit(data: Dataset, limit: Optional[int]) -> Dataset:
    if limit is None or limit >= len(data):
        return data
    return Subset(data, range(limit))


def load_dataset(
    name: str = "digits",
    *,
    root: Union[str, os.PathLike, None] = None,
    download: bool = False,
    seed: int = 0,
    limit: Optional[int] = None,
) -> tuple[Dataset, Dataset, DatasetSpec]:
    """Load ``name`` as ``(train, test, spec)``; samples are ``([C, H, W], label)``.

    Args:
        name: one of :data:`DATASETS`.
        root: directory in torchvision's layout; required for the non-bundled datasets
            unless ``download`` is set (then it defaults to ``./data``).
        download: let torchvision download missing files into ``root``.
        seed: fixes the train/test split of ``digits`` (the others come split).
        limit: keep only the first ``limit`` samples of each split (quick checks).

    Raises:
        ConfigError: unknown name, missing ``root``, files not found or unreadable,
            ``limit`` < 1.

    Examples:
        >>> train, test, spec = load_dataset("digits")
        >>> len(train), len(test), tuple(train[0][0].shape), spec.num_classes
        (1437, 360, (1, 8, 8), 10)
    """
    spec = dataset_spec(name)
    if limit is not None:
        positive_int("limit", limit, what="samples per split, or None for all")
    if spec.bundled:
        train, test = load_digits_split(seed=seed)
        train, test = (
            TensorDataset(d.tensors[0].view(-1, *spec.in_shape), d.tensors[1])
            for d in (train, test)
        )
    else:
        if root is None:
            if not download:
                raise ConfigError(
                    f"dataset {name!r} is not bundled: give its directory with --data-root "
                    f"(torchvision layout, e.g. ROOT/{spec.folder}) or pass --download"
                )
            root = "data"
        root = os.fspath(root)
        train = _torchvision_split(spec, root, True, download)
        test = _torchvision_split(spec, root, False, False)
    return _limit(train, limit), _limit(test, limit), spec
