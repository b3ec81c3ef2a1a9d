r"""ONNX export of single-step nets (forward only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

from ..core import registry
from ..core.io import atomic_path
from ..core.surrogate import S2Surrogate, heaviside, s2_spike
from ..core.validate import positive_int
from ..errors import ConversionError
from ._common import DEPLOY_HINT, call_quietly, check_out_path, prepare, require

__all__ = ["ONNX_OPSET", "to_onnx"]

PathLike = Union[str, os.PathLike]

#: ONNX opset written by default (default domain). onnxruntime ≥ 1.15 runs it.
ONNX_OPSET = 18


class _ExportHeaviside(nn.Module):
    """Spikes as a comparison and a cast: ``(v - θ >= 0)`` in the input's dtype.

    Stands in for the S² surrogate during export, so that its autograd Function (and its
    backward) never reaches the exporter: ONNX gets ``Sub → GreaterOrEqual → Cast``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return (x >= 0).to(x.dtype)


def _is_heaviside_surrogate(fn: Any) -> bool:
    """True for spike functions whose forward is exactly ``(x >= 0).to(x.dtype)``.

    Ours (:func:`~snn_singlestep.core.surrogate.heaviside`,
    :func:`~snn_singlestep.core.surrogate.s2_spike`, a spiking
    :class:`~snn_singlestep.core.surrogate.S2Surrogate`) and those a registered framework
    vouches for (:attr:`~snn_singlestep.core.registry.Framework.is_heaviside`, e.g. every
    SpikingJelly surrogate with ``spiking=True``).
    """
    if fn is heaviside or fn is s2_spike:
        return True
    if isinstance(fn, S2Surrogate):
        return bool(fn.spiking)
    return any(fw.is_heaviside(fn) for fw in registry.frameworks())


def _swap_surrogates(net: nn.Module) -> int:
    """Replace the heaviside spike functions of the net's neurons by :class:`_ExportHeaviside`.

    Each neuron of ours keeps its spike function in the attribute its registry record
    names (:attr:`~snn_singlestep.core.registry.NeuronKind.spike_fn_attr`). Returns how many
    were replaced.
    """
    swapped = 0
    for m in net.modules():
        kind = registry.neuron_kind(m)
        if kind is None:
            continue
        attr = kind.spike_fn_attr
        if _is_heaviside_surrogate(getattr(m, attr, None)):
            if attr in m.__dict__:
                del m.__dict__[attr]
            setattr(m, attr, _ExportHeaviside())
            swapped += 1
    return swapped


def to_onnx(
    net: nn.Module,
    sample_input: Tensor,
    path: PathLike,
    *,
    opset_version: int = ONNX_OPSET,
) -> Path:
    r"""Export a single-step net's forward pass to an ONNX file.

    The net is exported in eval mode from a copy in which every S² spike function (the
    surrogate of ``S2Cell``, ``S2Neuron``, ``S2Node`` and of the collapsed neurons) is
    replaced by ``(v - θ >= 0)`` cast to the input's dtype: the graph holds ``Sub``,
    ``GreaterOrEqual`` and ``Cast`` where the neurons fire, and the surrogate's autograd
    Function never reaches the exporter. Axis 0 of the input (and of every output) is a
    dynamic batch axis named ``batch``; the input is named ``input``, the outputs
    ``output`` (``output_0``, ``output_1``, … when the net returns several tensors).

    The exporter is ``torch.onnx.export(dynamo=True)`` (``torch.export`` + onnxscript),
    writing opset ``opset_version`` (default :data:`ONNX_OPSET` = 18). onnxruntime then
    gives the same spikes as torch, except for a membrane within float rounding of its
    threshold when the runtime reorders arithmetic (e.g. a BatchNorm fused into the
    convolution before it), and real-valued outputs within about 1e-5.

    Args:
        net: a single-step net (no stateful neurons).
        sample_input: one batch ``[B, ...]`` in the dtype the ONNX model will take (see
            :func:`to_nir` for ``[1, B, ...]`` and SpikingJelly step mode ``'m'``).
        path: the ``.onnx`` file to write; written to a temporary file in the same
            directory first and moved into place once complete.
        opset_version: ONNX opset of the default domain.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConversionError: a stateful neuron, or the exporter failed (its message included).
        ShapeError: the net does not run on ``sample_input``, or a time axis T > 1.
        ConfigError: ``sample_input`` is not a float tensor, or ``path`` is not writable.
        ImportError: ``onnx``/``onnxscript`` is missing (``pip install snn_singlestep[deploy]``).

    Examples:
        >>> import pytest  # the deploy extra: onnxscript (with onnx) and onnxruntime
        >>> _, ort = pytest.importorskip("onnxscript"), pytest.importorskip("onnxruntime")
        >>> import tempfile, pathlib, torch
        >>> from torch import nn
        >>> from snn_singlestep import S2Cell
        >>> net = nn.Sequential(nn.Linear(4, 3), S2Cell(0.2)).eval()
        >>> path = to_onnx(net, torch.rand(2, 4), pathlib.Path(tempfile.mkdtemp()) / "net.onnx")
        >>> session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        >>> x = torch.rand(5, 4)
        >>> (spikes,) = session.run(None, {"input": x.numpy()})
        >>> torch.equal(torch.from_numpy(spikes), net(x).detach())
        True
    """
    onnx = require("onnx", "ONNX export")
    require("onnxscript", "ONNX export (torch.onnx.export with dynamo=True)")
    positive_int("opset_version", opset_version, minimum=13)
    out_path = check_out_path(path, "to_onnx")
    work, x, out = prepare(net, sample_input, "export the net to ONNX")
    _swap_surrogates(work)
    n_out = len([t for t in tree_leaves(out) if isinstance(t, Tensor)])
    if n_out == 0:
        raise ConversionError("the net returns no tensor; there is nothing to export")
    if x.shape[0] == 1:  # batch 1 would be specialized by torch.export: trace with 2
        x = torch.cat([x, x])
    output_names = ["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)]
    batch = torch.export.Dim("batch")

    def export() -> Any:
        return torch.onnx.export(
            work,
            (x,),
            None,
            dynamo=True,
            opset_version=opset_version,
            input_names=["input"],
            output_names=output_names,
            dynamic_shapes=({0: batch},),
            external_data=False,
            optimize=True,
            verbose=False,
        )

    try:
        with torch.no_grad():
            program = call_quietly(export)
    except ImportError as err:
        raise ImportError(
            f"ONNX export needs a dependency that is missing ({err}): {DEPLOY_HINT}"
        ) from err
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConversionError(
            f"torch.onnx.export could not export the net ({type(err).__name__}: {first})"
        ) from err
    model = program.model_proto
    try:
        onnx.checker.check_model(model)
    except Exception as err:
        raise ConversionError(f"the exported ONNX model does not pass onnx.checker: {err}") from err
    with atomic_path(out_path) as tmp:
        onnx.save_model(model, tmp)
    return out_path
