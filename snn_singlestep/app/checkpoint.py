r"""Checkpoints that plain PyTorch can read, written atomically.

A checkpoint is a ``dict`` of tensors and plain Python values (``str``, ``int``,
``float``, ``bool``, ``None``, lists, tuples, dicts), so
``torch.load(path, weights_only=True)`` opens it without running any pickled code and
without this package installed. Its keys:

=================  ==========================================================
``format``         ``"snn_singlestep.checkpoint"``
``version``        :data:`VERSION` (an ``int``)
``config``         the run's settings (a ``dict`` of plain values)
``model``          the model's ``state_dict()``
``epoch``          completed epochs (training checkpoints)
``optimizer``      ``optimizer.state_dict()`` (training checkpoints)
``scheduler``      ``scheduler.state_dict()`` (training checkpoints)
``rng``            ``{"torch": ByteTensor, "cuda": ByteTensor or None}``
``history``        list of per-epoch metric dicts
=================  ==========================================================

:func:`save_checkpoint` writes with :func:`snn_singlestep.core.io.atomic_write` (also
importable from here): a temporary file in the target's directory, flushed and
``fsync``\ ed, then ``os.replace``\ d over the target (atomic on POSIX and Windows), and
the directory ``fsync``\ ed: a crash at any moment leaves either the previous checkpoint
or the new one, never a torn file, and no temporary file. A replaced checkpoint keeps its
file mode.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from ..core.io import atomic_write
from ..errors import CheckpointError

__all__ = [
    "FORMAT",
    "VERSION",
    "atomic_write",
    "check_config",
    "load_checkpoint",
    "load_model_state",
    "load_weights",
    "read_torch_file",
    "save_checkpoint",
]

FORMAT = "snn_singlestep.checkpoint"
VERSION = 1
_REQUIRED = ("format", "version", "config", "model")

PathLike = Union[str, os.PathLike]


def save_checkpoint(path: PathLike, checkpoint: Mapping[str, Any]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically; ``format`` and ``version`` are added.

    Args:
        path: the file to (over)write; its directory must exist.
        checkpoint: at least ``config`` (plain values) and ``model`` (a state_dict).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: ``config`` or ``model`` is missing.
        OSError: the file cannot be written (the previous one is then intact).

    Examples:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "ckpt.pt"
        >>> _ = save_checkpoint(path, {"config": {"lr": 0.1}, "model": nn.Linear(2, 1).state_dict()})
        >>> torch.load(path, weights_only=True)["config"]
        {'lr': 0.1}
    """
    missing = [k for k in ("config", "model") if k not in checkpoint]
    if missing:
        raise CheckpointError(f"cannot save {path}: the checkpoint lacks {', '.join(missing)}")
    payload = {"format": FORMAT, "version": VERSION, **checkpoint}
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)
    return Path(path)


#: What ``torch.save`` writes first in its legacy (pre-1.6, non-zip) format: a pickled magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."


def _unpickler_reason(err: BaseException) -> str:
    """The one line of a ``weights_only`` refusal that says what was refused.

    PyTorch's message starts with advice to re-run with ``weights_only=False``, which is
    wrong advice for a file of unknown origin; only the ``WeightsUnpickler error:`` line
    names the cause.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            reason = line[len("WeightsUnpickler error:"):].strip()
            return reason.split(". ")[0].rstrip(".") or reason
    return lines[0] if lines else type(err).__name__


def read_torch_file(path: PathLike, *, what: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with a one-line :class:`CheckpointError` on failure.

    The one reader of PyTorch files behind :func:`load_checkpoint` (``eval``, ``export``,
    ``train --resume``) and :func:`load_weights` (``convert --checkpoint``). Every error
    names the file, ``what`` it should be and the cause: missing, not a PyTorch file at all
    (``torch.save`` writes a zip archive holding ``data.pkl``, or, before PyTorch 1.6, a
    pickle that starts with a magic number), truncated (an incomplete zip archive), corrupt,
    or holding pickled objects other than tensors and plain values (never unpickled).

    Raises:
        CheckpointError: as above.

    Examples:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
        >>> _ = path.write_text("shopping list")
        >>> read_torch_file(path, what="weights file")
        Traceback (most recent call last):
        ...
        snn_singlestep.errors.CheckpointError: ...notes.txt is not a readable weights file (truncated or corrupt): not a PyTorch file (torch.save writes a zip archive)
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist or is not a file")
    unreadable = f"{path} is not a readable {what} (truncated or corrupt)"
    try:
        with open(path, "rb") as f:
            head = f.read(len(_LEGACY_MAGIC))
        is_zip = zipfile.is_zipfile(path)
        names: list[str] = []
        if is_zip:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"{unreadable}: {getattr(err, 'strerror', None) or err}") from None
    if not is_zip and not head.startswith(_LEGACY_MAGIC):
        if head.startswith(b"PK\x03\x04"):  # a zip archive that never got its end
            raise CheckpointError(f"{unreadable}: an incomplete torch.save zip archive (truncated)")
        raise CheckpointError(f"{unreadable}: not a PyTorch file (torch.save writes a zip archive)")
    if is_zip and not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        raise CheckpointError(f"{unreadable}: a zip archive, but not one torch.save wrote "
                              "(it holds no data.pkl)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain Python values; refusing to "
            f"unpickle it (weights_only=True): {_unpickler_reason(err)}"
        ) from None
    except Exception as err:  # noqa: BLE001 - torch.load raises many types for torn files
        first = (str(err).splitlines() or [""])[0].strip() or type(err).__name__
        raise CheckpointError(f"{unreadable}: {type(err).__name__}: {first}") from None


def load_weights(path: PathLike) -> dict[str, Any]:
    """The state_dict in a weights file: the file itself, or under ``model``, ``state_dict`` or ``net``.

    Read with :func:`read_torch_file` (``weights_only=True``). Keys saved from a
    ``DistributedDataParallel`` wrapper lose their ``module.`` prefix.

    Raises:
        CheckpointError: one line naming the file and the cause (see
            :func:`read_torch_file`; or it holds no state_dict).

    Examples:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.pt"
        >>> torch.save({"epoch": 3, "net": {"module.weight": torch.ones(1)}}, path)
        >>> load_weights(path)
        {'weight': tensor([1.])}
    """
    data = read_torch_file(path, what="weights file")
    if isinstance(data, Mapping):
        for key in ("model", "state_dict", "net"):
            if isinstance(data.get(key), Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise CheckpointError(
            f"{path} is not a readable weights file (not a state_dict): it holds "
            f"{type(data).__name__ if not isinstance(data, Mapping) else 'a dict with non-str keys'}"
            ", not a dict of tensors by name"
        )
    # Weights saved from a DistributedDataParallel wrapper carry a "module." prefix.
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module."):]: v for k, v in data.items()}
    return dict(data)


def load_checkpoint(path: PathLike, *, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (with ``weights_only=True``).

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, holds pickled objects
            other than tensors and plain values, or is not a checkpoint of this package
            (or of a newer format version). The message names the file.

    Examples:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "bad.pt"
        >>> _ = path.write_bytes(b"not a checkpoint")
        >>> load_checkpoint(path)
        Traceback (most recent call last):
        ...
        snn_singlestep.errors.CheckpointError: ...bad.pt is not a readable checkpoint (truncated or corrupt...
    """
    data = read_torch_file(path, what="checkpoint", map_location=map_location)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an snn_singlestep checkpoint (expected a dict with "
            f"format={FORMAT!r}, got {type(data).__name__}"
            + (f" with format={data.get('format')!r}" if isinstance(data, dict) else "")
            + ")"
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"{path} is incomplete: missing {', '.join(missing)}")
    version = data["version"]
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this snn_singlestep reads "
            f"versions up to {VERSION}. Upgrade snn_singlestep to read it."
        )
    if not isinstance(data["config"], dict):
        raise CheckpointError(f"{path}: config must be a dict, got {type(data['config']).__name__}")
    return data


def _same(a: Any, b: Any) -> bool:
    # Lists and tuples compare equal (a tuple may come back as a list from JSON or argparse).
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def check_config(
    path: PathLike, saved: Mapping[str, Any], current: Mapping[str, Any], keys: Iterable[str]
) -> None:
    """Raise if ``saved`` and ``current`` differ on any of ``keys``.

    Raises:
        CheckpointError: naming ``path`` and each differing setting with both values.

    Examples:
        >>> check_config("run/checkpoint.pt", {"lr": 0.1, "epochs": 3},
        ...              {"lr": 0.1, "epochs": 5}, ["lr", "epochs"])
        Traceback (most recent call last):
        ...
        snn_singlestep.errors.CheckpointError: run/checkpoint.pt does not match this run: epochs is 3 in the checkpoint but 5 now
    """
    diffs = [
        f"{key} is {saved.get(key, '<missing>')!r} in the checkpoint but {current.get(key)!r} now"
        for key in keys
        if not _same(saved.get(key, "<missing>"), current.get(key))
    ]
    if diffs:
        raise CheckpointError(f"{path} does not match this run: " + "; ".join(diffs))


def load_model_state(model: nn.Module, state: Mapping[str, Any], path: PathLike) -> None:
    """``model.load_state_dict(state)``, with a :class:`CheckpointError` that says what differs.

    Raises:
        CheckpointError: naming ``path``, the missing and unexpected keys and the
            tensors whose shapes differ (the first few of each).

    Examples:
        >>> load_model_state(nn.Linear(3, 2), nn.Linear(4, 2).state_dict(), "net.pt")
        Traceback (most recent call last):
        ...
        snn_singlestep.errors.CheckpointError: net.pt does not fit this model: shape of weight is (2, 4) in the checkpoint but (2, 3) in the model
    """
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: model must be a state_dict, got {type(state).__name__}")
    own = model.state_dict()

    def listed(names: list[str]) -> str:
        shown = ", ".join(names[:5])
        return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")

    problems = []
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        problems.append(f"missing {listed(missing)}")
    if unexpected:
        problems.append(f"unexpected {listed(unexpected)}")
    shapes = [
        f"shape of {k} is {tuple(state[k].shape)} in the checkpoint but {tuple(v.shape)} in "
        "the model"
        for k, v in own.items()
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems += shapes[:5]
    if problems:
        raise CheckpointError(f"{path} does not fit this model: " + "; ".join(problems))
    model.load_state_dict(state)
