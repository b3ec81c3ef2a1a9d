"""Datasets for the command line and examples. Digits is bundled with scikit-learn."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

__all__ = ["load_digits_split"]


def load_digits_split(
    *, test_size: float = 0.2, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's 1,797 8×8 digits as ``(train, test)`` datasets of ``([64], label)``.

    Pixels are scaled from 0..16 to 0..1; the split is stratified and fixed by ``seed``.

    Example:
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
