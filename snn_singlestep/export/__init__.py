r"""Deployment: export single-step nets to NIR and ONNX, import NIR graphs.

A single-step (T=1) spiking net is a chain of affine maps and thresholds, which is what
neuromorphic chips (through NIR, the Neuromorphic Intermediate Representation) and
ordinary inference runtimes (through ONNX) run.

- :func:`to_nir` — ``nir.NIRGraph`` of ``Affine``/``Conv``/pooling/``Flatten`` and
  ``Threshold`` nodes (norms folded into the layer before them); :func:`write_nir`.
- :func:`from_nir` — a single-step :class:`NIRNet` rebuilt from such a graph or file.
- :func:`to_onnx` — an ``.onnx`` file of the forward pass; spikes are comparisons + casts.
- :func:`export_checkpoint` — both, for a checkpoint written by ``snn-singlestep train``.

The exporters run the net once on a sample input and refuse what they cannot represent
faithfully (stateful neurons, unknown operations, a time axis T > 1) with an error from
:mod:`snn_singlestep.errors` naming the module. Files are written to a temporary file in
the target directory and moved into place, so a failure leaves no partial file.

They need the optional dependencies of the ``deploy`` extra (``nir``, ``nirtorch``,
``onnx``, ``onnxscript``, ``onnxruntime``): ``pip install snn_singlestep[deploy]``.
``docs/deploying.md`` is the user guide.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from ..errors import ConfigError
from ._common import DEPLOY_HINT
from ._nir import NIRNet, from_nir, to_nir, write_nir
from ._onnx import ONNX_OPSET, to_onnx

__all__ = [
    "DEPLOY_HINT",
    "FORMATS",
    "ONNX_OPSET",
    "NIRNet",
    "export_checkpoint",
    "from_nir",
    "to_nir",
    "to_onnx",
    "write_nir",
]

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
    :func:`to_nir` (then ``nir.write``) or :func:`to_onnx`, using a random sample batch of
    the input shape the checkpoint records (``config["in_shape"]``).

    Args:
        checkpoint_path: the checkpoint file.
        out_path: the file to write (``.nir`` or ``.onnx`` by convention).
        format: ``"nir"`` or ``"onnx"``.
        input_shape: ``(C, H, W)`` of one sample, for checkpoints that do not record it
            (SpikingJelly zoo nets converted for any image size).
        batch_size: batch size of the sample input used for tracing.
        opset_version: ONNX opset (``"onnx"`` only).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: unreadable checkpoint or a model its config cannot rebuild.
        ConfigError: unknown format, no input shape, or an output path that cannot be written.
        ConversionError, ShapeError: as :func:`to_nir` / :func:`to_onnx`.
        ImportError: a deploy dependency is missing (``pip install snn_singlestep[deploy]``).
    """
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    from ..app.train import model_from_checkpoint

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
