r"""Export the model of a checkpoint to NIR or ONNX (``snn-singlestep export``).

The application layer over :mod:`snn_singlestep.export`: it rebuilds a model from a
checkpoint written by ``snn-singlestep train`` / ``convert``
(:func:`snn_singlestep.app.train.model_from_checkpoint`) and hands it to
:func:`~snn_singlestep.export.to_nir` or :func:`~snn_singlestep.export.to_onnx`. It lives
here, not in :mod:`snn_singlestep.export`, because imports run one way (app → export →
core): the exporters know nothing of checkpoints or of the training code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from ..core.validate import choice, positive_int
from ..errors import ConfigError
from ..export import ONNX_OPSET, to_nir, to_onnx

__all__ = ["FORMATS", "export_checkpoint"]

#: Formats accepted by :func:`export_checkpoint` (``snn-singlestep export --format``).
FORMATS = ("nir", "onnx")

PathLike = Union[str, os.PathLike]


def export_checkpoint(
    checkpoint_path: PathLike,
    out_path: PathLike,
    format: str,
    *,
    input_shape: Optional[Sequence[int]] = None,
    batch_size: int = 2,
    opset_version: int = ONNX_OPSET,
) -> Path:
    """Export the model of a checkpoint (``snn-singlestep train`` / ``convert``) to a file.

    The model is rebuilt from the checkpoint's config and weights
    (:func:`snn_singlestep.app.train.model_from_checkpoint`) and exported with
    :func:`~snn_singlestep.export.to_nir` (then ``nir.write``) or
    :func:`~snn_singlestep.export.to_onnx`, using a random sample batch of the input shape
    the checkpoint records (``config["in_shape"]``).

    Args:
        checkpoint_path: the checkpoint file.
        out_path: the file to write (``.nir`` or ``.onnx`` by convention).
        format: ``"nir"`` or ``"onnx"`` (:data:`FORMATS`).
        input_shape: ``(C, H, W)`` of one sample, for checkpoints that do not record it
            (SpikingJelly zoo nets converted for any image size).
        batch_size: batch size of the sample input used for tracing.
        opset_version: ONNX opset (``"onnx"`` only).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: unreadable checkpoint or a model its config cannot rebuild.
        ConfigError: unknown format, no input shape, or an output path that cannot be written.
        ConversionError, ShapeError: as :func:`~snn_singlestep.export.to_nir` /
            :func:`~snn_singlestep.export.to_onnx`.
        ImportError: a deploy dependency is missing (``pip install snn_singlestep[deploy]``).
    """
    choice("format", format, FORMATS)
    positive_int("batch_size", batch_size)
    from .train import model_from_checkpoint  # the training stack, only when exporting

    model, data = model_from_checkpoint(checkpoint_path)
    shape = input_shape if input_shape is not None else data["config"].get("in_shape")
    if not shape:
        raise ConfigError(
            f"{checkpoint_path} does not record the input shape of its model; pass "
            "input_shape=(C, H, W) (--input-shape on the command line)"
        )
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ConfigError(f"input_shape must be a sequence of ints, got {shape!r}") from None
    if not shape or any(d < 1 for d in shape):
        raise ConfigError(f"input_shape must hold positive sizes, got {shape!r}")
    generator = torch.Generator().manual_seed(0)
    sample = torch.rand((batch_size, *shape), generator=generator)
    if format == "nir":
        to_nir(model, sample, path=out_path)
        return Path(out_path)
    return to_onnx(model, sample, out_path, opset_version=opset_version)
