"""Training and evaluation as ``snn-singlestep`` runs them.

:func:`train` is the whole run behind ``snn-singlestep train``: data, model, Adam with a
cosine learning-rate schedule, cross-entropy on the membrane readout, per-epoch
metrics, atomic checkpoints with everything needed to resume bit for bit (weights,
optimizer, scheduler, RNG), a metrics file and a training-curve plot, and
multi-process training when started by ``torchrun`` (:mod:`snn_singlestep.app.distributed`).

:func:`fit` trains a given model on given datasets (no files); :func:`evaluate` gives
the accuracy; :class:`~snn_singlestep.monitor.FiringRateMonitor` counts spikes of every
spiking layer.

Output directory (``TrainConfig.out``), written by rank 0 only:

================  ===========================================================
``config.json``   the run's settings
``checkpoint.pt`` the last completed epoch (:mod:`snn_singlestep.app.checkpoint`)
``metrics.jsonl`` one JSON object per epoch: ``epoch``, ``train_loss``,
                  ``train_accuracy``, ``test_loss``, ``test_accuracy``, ``lr``,
                  ``seconds``
``curves.png``    loss and accuracy per epoch
================  ===========================================================

Each file is written atomically (:func:`snn_singlestep.core.io.atomic_write`: a temporary
``.NAME.<random>.tmp`` next to it, renamed over it). A run killed mid-write can leave such a
temporary file behind; the next run into the same directory removes those of the four files
above, and nothing else (:func:`remove_stale_temp_files`).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm.auto import tqdm

from ..core.io import atomic_write
from ..core.validate import positive_int, positive_number
from . import checkpoint as ckpt
from .data import dataset_spec, load_dataset
from .distributed import (
    DistContext,
    all_reduce_sum,
    barrier,
    setup,
    sync_batchnorm,
    teardown,
)
from ..errors import CheckpointError, ConfigError
from .models import build_model, check_framework, check_model
from ..monitor import FiringRateMonitor

__all__ = [
    "CHECKPOINT_NAME",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "evaluate_model",
    "fit",
    "model_from_checkpoint",
    "plot_history",
    "remove_stale_temp_files",
    "train",
]

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
CONFIG_NAME = "config.json"
PLOT_NAME = "curves.png"

# Settings that define the optimisation: a resumed run must agree on all of them.
_RUN_KEYS = ("dataset", "limit", "model", "framework", "epochs", "batch_size", "lr", "seed",
             "in_shape", "num_classes")
_MODEL_KEYS = {"mlp": ("hidden",), "cnn": ("channels",), "preact-resnet": ("depth", "width")}


def _sizes(name: str, value: Sequence[int]) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ConfigError(f"{name} must be a non-empty list of positive integers, got {value!r}")
    return tuple(positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


@dataclass
class TrainConfig:
    """Settings of a training run (the options of ``snn-singlestep train``).

    ``batch_size`` is the *global* batch: with N processes each takes
    ``batch_size / N`` samples per step, so the number of processes does not change
    what is optimised. ``hidden`` sizes the ``mlp``, ``channels`` the ``cnn``,
    ``depth``/``width`` the ``preact-resnet``.

    Raises:
        ConfigError: an unknown name or a non-positive size, count or rate.

    Examples:
        >>> TrainConfig(epochs=0)
        Traceback (most recent call last):
        ...
        snn_singlestep.errors.ConfigError: epochs must be an int >= 1, got 0
    """

    dataset: str = "digits"
    model: str = "mlp"
    framework: str = "snntorch"
    hidden: tuple[int, ...] = (256, 256)
    channels: tuple[int, ...] = (16, 32)
    depth: int = 20
    width: int = 16
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    limit: Optional[int] = None
    data_root: Optional[str] = None
    download: bool = False
    device: str = "auto"
    workers: int = 0
    out: Optional[str] = None
    resume: Optional[str] = None
    progress: bool = True

    def __post_init__(self) -> None:
        dataset_spec(self.dataset)
        check_model(self.model)
        check_framework(self.framework)
        self.hidden = _sizes("hidden", self.hidden)
        self.channels = _sizes("channels", self.channels)
        for name in ("depth", "width", "epochs", "batch_size"):
            positive_int(name, getattr(self, name))
        if self.limit is not None:
            positive_int("limit", self.limit, what="samples per split")
        positive_number("lr", self.lr)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        positive_int("workers", self.workers, minimum=0, what="DataLoader worker processes")

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain Python values (lists for the sizes)."""
        d = asdict(self)
        d["hidden"], d["channels"], d["lr"] = list(self.hidden), list(self.channels), float(self.lr)
        return d


@dataclass
class TrainResult:
    """What a run measured: per-epoch history, final test accuracy, the trained model."""

    test_accuracy: float
    train_seconds: float
    history: list[dict] = field(default_factory=list)
    model: Optional[nn.Module] = None
    checkpoint: Optional[Path] = None
    test_samples: int = 0
    rank: int = 0


# --------------------------------------------------------------------------- evaluation
def _loader(data: Dataset, batch_size: int, device: torch.device, **kw: Any) -> DataLoader:
    return DataLoader(data, batch_size=batch_size, pin_memory=device.type == "cuda", **kw)


@torch.no_grad()
def _eval_sums(
    model: nn.Module, data: Dataset, device: torch.device, batch_size: int
) -> Tensor:
    """``[loss sum, correct, count]`` of ``model`` on ``data`` (float64, on ``device``)."""
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    for x, y in _loader(data, batch_size, device):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        out = model(x)
        sums[0] += loss_fn(out, y).double()
        sums[1] += (out.argmax(-1) == y).sum()
        sums[2] += y.numel()
    return sums


def evaluate(model: nn.Module, data: Dataset, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``data``, in eval mode (the mode is restored).

    Examples:
        >>> from torch.utils.data import TensorDataset
        >>> net = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = net.weight.copy_(torch.eye(2)), net.bias.zero_()
        >>> evaluate(net, TensorDataset(torch.eye(2), torch.tensor([0, 1])))
        1.0
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        sums = _eval_sums(model, data, device, batch_size)
    finally:
        model.train(was_training)
    return float(sums[1] / sums[2])


def evaluate_model(
    model: nn.Module, data: Dataset, *, batch_size: int = 256, device: Any = None
) -> dict[str, Any]:
    """Accuracy, loss and firing rates of ``model`` on ``data`` (eval mode, restored).

    Returns:
        ``{"samples", "accuracy", "loss", "firing_rates": {"layers": [...],
        "overall"}, "energy": {...}}``: ``energy`` holds per-sample MACs, SynOps and
        energy estimated by :func:`snn_singlestep.energy.energy_report` on the first
        batch (None for an empty dataset).

    Examples:
        >>> from torch.utils.data import TensorDataset
        >>> from snn_singlestep.models import SingleStepMLP
        >>> net = SingleStepMLP(4, 2, hidden=(3,), framework="spikingjelly")
        >>> report = evaluate_model(net, TensorDataset(torch.rand(6, 4), torch.zeros(6).long()))
        >>> report["samples"], [r["layer"] for r in report["firing_rates"]["layers"]]
        (6, ['features.2'])
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with FiringRateMonitor(model) as monitor:
            sums = _eval_sums(model, data, device, batch_size)
    finally:
        model.train(was_training)
    count = int(sums[2])
    return {
        "samples": count,
        "accuracy": float(sums[1]) / count if count else 0.0,
        "loss": float(sums[0]) / count if count else 0.0,
        "firing_rates": {"layers": monitor.layers(), "overall": monitor.overall()},
        "energy": _energy_summary(model, data, device) if count else None,
    }


def _energy_summary(model: nn.Module, data: Dataset, device: torch.device) -> dict[str, Any]:
    """Per-sample MACs, SynOps and energy (45 nm table) on the first batch of ``data``."""
    from ..energy import energy_report

    x, _ = next(iter(_loader(data, 64, device)))
    report = energy_report(model, x.to(device))
    n = report.batch_size
    return {
        "macs_per_sample": report.macs / n,
        "synops_per_sample": report.synops / n,
        "energy_nj_per_sample": report.energy_per_sample_pj() / 1e3,
        "table_pj": report.table,
    }


# --------------------------------------------------------------------------- training loop
def _shard(data: Dataset, ctx: DistContext) -> Dataset:
    """This process's share of an evaluation set (every sample counted exactly once)."""
    if not ctx.distributed:
        return data
    return Subset(data, range(ctx.rank, len(data), ctx.world_size))


def _train_loader(
    data: Dataset, ctx: DistContext, batch_size: int, seed: int, workers: int
) -> tuple[DataLoader, DistributedSampler]:
    # A DistributedSampler in every case (one replica when alone): each epoch's order
    # is a pure function of (seed, epoch), so a resumed run sees the same batches, and
    # N processes together see the same global batches as one process.
    if batch_size % ctx.world_size:
        raise ConfigError(
            f"batch_size {batch_size} (the global batch) must be divisible by the number "
            f"of processes, {ctx.world_size}"
        )
    if len(data) < 2 * ctx.world_size:
        raise ConfigError(
            f"training needs at least 2 samples per process (BatchNorm), got {len(data)} for "
            f"{ctx.world_size} process(es)"
        )
    per_rank = batch_size // ctx.world_size
    sampler = DistributedSampler(
        data, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed
    )
    # BatchNorm cannot train on a batch of one sample: drop such a lone last sample.
    drop_last = len(sampler) % per_rank == 1 and len(sampler) > 1
    loader = _loader(data, per_rank, ctx.device, sampler=sampler, num_workers=workers,
                     drop_last=drop_last)
    return loader, sampler


def _rng_state(device: torch.device) -> dict[str, Optional[Tensor]]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def _set_rng_state(state: Any, device: torch.device, path: Path) -> None:
    try:
        torch.set_rng_state(state["torch"].cpu())
        if device.type == "cuda" and state.get("cuda") is not None:
            torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    except (KeyError, TypeError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"{path}: cannot restore the RNG state ({err})") from None


def _epochs(
    net: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    train_data: Dataset,
    test_data: Dataset,
    *,
    ctx: DistContext,
    start_epoch: int,
    epochs: int,
    batch_size: int,
    seed: int,
    workers: int = 0,
    progress: bool = True,
) -> Iterator[dict[str, Any]]:
    """Train ``net`` epoch by epoch; yields each epoch's metrics (identical on all ranks).

    ``net`` is what is trained (``model`` itself, or its ``DistributedDataParallel``
    wrapper); ``model`` is evaluated.
    """
    loader, sampler = _train_loader(train_data, ctx, batch_size, seed, workers)
    test_shard = _shard(test_data, ctx)
    loss_fn = nn.CrossEntropyLoss()
    show = progress and ctx.is_main
    bar = tqdm(range(start_epoch, epochs), desc="train", unit="epoch", disable=not show,
               initial=start_epoch, total=epochs)
    for epoch in bar:
        start = time.perf_counter()
        sampler.set_epoch(epoch)
        net.train()
        lr = optimizer.param_groups[0]["lr"]
        sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)
        batches = tqdm(loader, desc=f"epoch {epoch + 1}", unit="batch", leave=False,
                       disable=not show)
        for step, (x, y) in enumerate(batches, 1):
            x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            out = net(x)
            loss = loss_fn(out, y)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                sums[0] += loss.detach().double() * y.numel()
                sums[1] += (out.argmax(-1) == y).sum()
                sums[2] += y.numel()
            if show and (step % 10 == 0 or step == len(loader)):  # reading syncs a GPU
                batches.set_postfix(loss=f"{float(sums[0] / sums[2]):.3f}",
                                    acc=f"{float(sums[1] / sums[2]):.3f}")
        scheduler.step()
        sums = all_reduce_sum(sums, ctx)
        model.eval()
        test = all_reduce_sum(_eval_sums(model, test_shard, ctx.device, 512), ctx)
        model.train()
        row = {
            "epoch": epoch + 1,
            "train_loss": float(sums[0] / sums[2]),
            "train_accuracy": float(sums[1] / sums[2]),
            "test_loss": float(test[0] / test[2]),
            "test_accuracy": float(test[1] / test[2]),
            "lr": float(lr),
            "seconds": time.perf_counter() - start,
        }
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", train_acc=f"{row['train_accuracy']:.3f}",
                        test_acc=f"{row['test_accuracy']:.3f}")
        yield row
    bar.close()


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
    """Train ``model`` in this process with Adam (cosine schedule) and cross-entropy.

    Writes no files; :func:`train` is the full run with checkpoints. Returns a
    :class:`TrainResult` whose ``history`` has one metrics dict per epoch.

    Examples:
        >>> from snn_singlestep.app.data import load_dataset
        >>> from snn_singlestep.models import SingleStepMLP
        >>> train_set, test_set, _ = load_dataset("digits", limit=128)
        >>> net = SingleStepMLP(64, 10, hidden=(32,), in_shape=(1, 8, 8))
        >>> result = fit(net, train_set, test_set, epochs=1, progress=False)
        >>> sorted(result.history[0])
        ['epoch', 'lr', 'seconds', 'test_accuracy', 'test_loss', 'train_accuracy', 'train_loss']
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    ctx = DistContext(device=next(model.parameters()).device)
    start = time.perf_counter()
    history = list(_epochs(model, model, optimizer, scheduler, train, test, ctx=ctx,
                           start_epoch=0, epochs=epochs, batch_size=batch_size, seed=seed,
                           progress=progress))
    return TrainResult(history[-1]["test_accuracy"], time.perf_counter() - start, history,
                       model, None, len(test))


# --------------------------------------------------------------------------- files
#: The files :func:`train` writes into ``out`` (each through an atomic temporary file).
OUTPUT_NAMES = (CONFIG_NAME, CHECKPOINT_NAME, METRICS_NAME, PLOT_NAME)

# The temporary names of snn_singlestep.core.io.atomic_path: tempfile.mkstemp with
# prefix ".NAME." and suffix ".tmp", whose random part is 8 of [a-z0-9_].
_STALE_TEMP = re.compile(
    r"\.(" + "|".join(re.escape(n) for n in OUTPUT_NAMES) + r")\.[a-z0-9_]{8}\.tmp"
)


def remove_stale_temp_files(out: os.PathLike | str) -> list[Path]:
    """Remove the temporary files an interrupted run left in ``out``; returns those removed.

    Only regular files named like the temporaries of the atomic writer for the files
    :func:`train` writes (``.curves.png.k3x_9q2a.tmp``, ``.checkpoint.pt.<random>.tmp``, ...)
    are removed; every other file, link or directory is left alone.

    Examples:
        >>> import pathlib, tempfile
        >>> out = pathlib.Path(tempfile.mkdtemp())
        >>> for name in (".curves.png.ab12_xyz.tmp", ".notes.txt.ab12_xyz.tmp", "curves.png"):
        ...     _ = (out / name).write_bytes(b"")
        >>> [p.name for p in remove_stale_temp_files(out)], sorted(p.name for p in out.iterdir())
        (['.curves.png.ab12_xyz.tmp'], ['.notes.txt.ab12_xyz.tmp', 'curves.png'])
    """
    removed = []
    try:
        entries = list(os.scandir(out))
    except OSError:
        return removed
    for entry in entries:
        if not _STALE_TEMP.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
        except OSError:  # gone already, or not ours to remove: leave it
            continue
        removed.append(Path(entry.path))
    return removed


def _write_metrics(path: Path, history: list[dict]) -> None:
    with atomic_write(path, "w") as f:
        for row in history:
            f.write(json.dumps(row) + "\n")


def _write_json(path: Path, data: dict) -> None:
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def plot_history(history: list[dict], path: os.PathLike | str) -> Path:
    """Save loss and accuracy per epoch as a PNG (matplotlib's Agg backend, no pyplot).

    Examples:
        >>> import pathlib, tempfile
        >>> rows = [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.1, "train_accuracy": 0.5,
        ...          "test_accuracy": 0.4}]
        >>> out = plot_history(rows, pathlib.Path(tempfile.mkdtemp()) / "c.png")
        >>> out.read_bytes()[:4]
        b'\\x89PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for split in ("train", "test"):
        loss_ax.plot(epochs, [r[f"{split}_loss"] for r in history], marker=".", label=split)
        acc_ax.plot(epochs, [100 * r[f"{split}_accuracy"] for r in history], marker=".",
                    label=split)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return path


# --------------------------------------------------------------------------- full run
def _load_data(config: TrainConfig, ctx: DistContext):
    def load(download: bool):
        return load_dataset(config.dataset, root=config.data_root, download=download,
                            seed=config.seed, limit=config.limit)

    if not (config.download and ctx.distributed):
        return load(config.download)
    # One download per machine: local rank 0 fetches, the others wait and read.
    if ctx.local_rank == 0:
        result = load(True)
        barrier(ctx)
        return result
    barrier(ctx)
    return load(False)


def _model_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "in_shape": tuple(config["in_shape"]),
        "num_classes": config["num_classes"],
        "framework": config["framework"],
        "hidden": tuple(config.get("hidden", (256, 256))),
        "channels": tuple(config.get("channels", (16, 32))),
        "depth": config.get("depth", 20),
        "width": config.get("width", 16),
    }


def _run_config(config: TrainConfig, spec: Any, ctx: DistContext) -> dict[str, Any]:
    from .. import __version__

    d = config.to_dict()
    d.update(in_shape=list(spec.in_shape), num_classes=spec.num_classes,
             world_size=ctx.world_size, snn_singlestep=__version__)
    return d


def train(config: TrainConfig) -> TrainResult:
    """Run ``config`` end to end (the ``snn-singlestep train`` command without its printing).

    Under ``torchrun`` every process calls this; see :mod:`snn_singlestep.app.distributed`.
    With ``config.out`` set, rank 0 writes ``config.json``, ``checkpoint.pt`` after
    every epoch, ``metrics.jsonl`` and ``curves.png`` there. With ``config.resume``
    (a checkpoint path) the run continues from that checkpoint's last completed
    epoch with the same weights, optimizer, scheduler and RNG state, and ends with the
    same weights and metrics as an uninterrupted run.

    Raises:
        ConfigError: bad settings, or data that cannot be found or read.
        CheckpointError: ``resume`` names a corrupt checkpoint or one of another run.
    """
    ctx = setup(config.device)
    try:
        return _train(config, ctx)
    finally:
        teardown(ctx)


def model_from_checkpoint(path: os.PathLike | str, *, map_location: Any = "cpu"):
    """Rebuild the model saved in a checkpoint; returns ``(model, checkpoint dict)``.

    Raises:
        CheckpointError: unreadable file, unknown model settings or weights that do
            not fit.
    """
    data = ckpt.load_checkpoint(path, map_location=map_location)
    config = data["config"]
    try:
        if config.get("model") == "spikingjelly-zoo":  # written by ``snn-singlestep convert``
            from .models import build_zoo_model, single_step_zoo_model

            model = single_step_zoo_model(build_zoo_model(
                config["zoo"], num_classes=config["num_classes"], neuron=config["neuron"],
                cnf=config.get("cnf", "ADD"),
            ))
        else:
            model = build_model(config["model"], **_model_kwargs(config))
    except (KeyError, TypeError, ConfigError) as err:
        raise CheckpointError(f"{path}: cannot rebuild its model from its config ({err})") from None
    ckpt.load_model_state(model, data["model"], path)
    return model, data


def _train(config: TrainConfig, ctx: DistContext) -> TrainResult:
    torch.manual_seed(config.seed)
    train_data, test_data, spec = _load_data(config, ctx)
    run = _run_config(config, spec, ctx)
    model = build_model(config.model, **_model_kwargs(run))

    resumed = None
    if config.resume is not None:
        path = Path(config.resume)
        resumed = ckpt.load_checkpoint(path, map_location="cpu")
        keys = _RUN_KEYS + _MODEL_KEYS[config.model]
        ckpt.check_config(path, resumed["config"], run, keys)
        ckpt.load_model_state(model, resumed["model"], path)

    model.to(ctx.device)
    net: nn.Module = model
    if ctx.distributed:
        model = sync_batchnorm(model, ctx.device)
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    history: list[dict] = []
    start_epoch = 0
    if resumed is not None:
        try:
            optimizer.load_state_dict(resumed["optimizer"])
            scheduler.load_state_dict(resumed["scheduler"])
            start_epoch = int(resumed["epoch"])
            history = list(resumed["history"])
        except (KeyError, ValueError, TypeError) as err:
            raise CheckpointError(
                f"{config.resume} cannot resume training: missing or mismatched "
                f"optimizer/scheduler/epoch state ({type(err).__name__}: {err})"
            ) from None
        if not 0 <= start_epoch <= config.epochs or len(history) != start_epoch:
            raise CheckpointError(
                f"{config.resume}: epoch {start_epoch} with {len(history)} history rows does "
                f"not fit a run of {config.epochs} epochs"
            )
        _set_rng_state(resumed.get("rng", {}), ctx.device, Path(config.resume))

    out = Path(config.out) if config.out is not None else None
    write = out is not None and ctx.is_main
    if write:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"out: cannot create {out} ({err.strerror or err})") from None
        remove_stale_temp_files(out)
        _write_json(out / CONFIG_NAME, run)
    start = time.perf_counter()
    for row in _epochs(net, model, optimizer, scheduler, train_data, test_data, ctx=ctx,
                       start_epoch=start_epoch, epochs=config.epochs,
                       batch_size=config.batch_size, seed=config.seed,
                       workers=config.workers, progress=config.progress):
        history.append(row)
        if write:
            ckpt.save_checkpoint(out / CHECKPOINT_NAME, {
                "config": run,
                "epoch": row["epoch"],
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": _rng_state(ctx.device),
                "history": history,
            })
            _write_metrics(out / METRICS_NAME, history)
    if write and history:
        plot_history(history, out / PLOT_NAME)
    barrier(ctx)  # nobody leaves (and tears the group down) before rank 0 has written
    accuracy = history[-1]["test_accuracy"] if history else float("nan")
    return TrainResult(accuracy, time.perf_counter() - start, history, model,
                       out / CHECKPOINT_NAME if out is not None else None, len(test_data),
                       ctx.rank)

