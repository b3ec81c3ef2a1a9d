r"""Deployment: export single-step nets to NIR and ONNX, import NIR graphs.

A single-step (T=1) spiking net is a chain of affine maps and thresholds, which is what
neuromorphic chips (through NIR, the Neuromorphic Intermediate Representation) and
ordinary inference runtimes (through ONNX) run.

- :func:`to_nir` — ``nir.NIRGraph`` of ``Affine``/``Conv``/pooling/``Flatten`` and
  ``Threshold`` nodes (norms folded into the layer before them); :func:`write_nir`.
- :func:`from_nir` — a single-step :class:`NIRNet` rebuilt from such a graph or file.
- :func:`to_onnx` — an ``.onnx`` file of the forward pass; spikes are comparisons + casts.

:func:`snn_singlestep.app.exporting.export_checkpoint` does either for a checkpoint written
by ``snn-singlestep train`` (it lives in the application layer: imports run app → export →
core, and this package imports neither snnTorch, SpikingJelly, the glue packages nor the
application). What the exporters know about neurons (threshold, spike function, firing
rule, graded spikes, state) and about host frameworks (step modes, time-major layers) they
ask :mod:`snn_singlestep.core.registry`, which the glue packages fill on import.

The exporters run the net once on a sample input and refuse what they cannot represent
faithfully (stateful neurons, unknown operations, a time axis T > 1) with an error from
:mod:`snn_singlestep.errors` naming the module. Files are written to a temporary file in
the target directory and moved into place, so a failure leaves no partial file.

They need the optional dependencies of the ``deploy`` extra (``nir``, ``nirtorch``,
``onnx``, ``onnxscript``, ``onnxruntime``): ``pip install snn_singlestep[deploy]``.
``docs/deploying.md`` is the user guide.
"""

from __future__ import annotations

from ._common import DEPLOY_HINT
from ._nir import NIRNet, from_nir, to_nir, write_nir
from ._onnx import ONNX_OPSET, to_onnx

__all__ = [
    "DEPLOY_HINT",
    "ONNX_OPSET",
    "NIRNet",
    "from_nir",
    "to_nir",
    "to_onnx",
    "write_nir",
]
