"""A plain training loop for single-step nets (used by ``snn-singlestep train``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

__all__ = ["TrainResult", "evaluate", "fit"]


@dataclass
class TrainResult:
    """What :func:`fit` measured: per-epoch history and the final test accuracy."""

    test_accuracy: float
    train_seconds: float
    history: list[dict] = field(default_factory=list)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``data``, in eval mode (the mode is restored)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in DataLoader(data, batch_size=batch_size):
        correct += (model(x).argmax(-1) == y).sum().item()
        total += y.numel()
    model.train(was_training)
    return correct / total


def fit(
    model: nn.Module,
    train: Dataset,
    test: Dataset,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> TrainResult:
    """Train with Adam and cross-entropy on the readout; returns a :class:`TrainResult`."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc="train", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        loss_sum = n = 0.0
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * y.numel()
            n += y.numel()
        scheduler.step()
        test_acc = evaluate(model, test)
        history.append({"epoch": epoch + 1, "loss": loss_sum / n, "test_accuracy": test_acc})
        bar.set_postfix(loss=f"{loss_sum / n:.3f}", test_acc=f"{test_acc:.3f}")
    return TrainResult(history[-1]["test_accuracy"], time.perf_counter() - start, history)
