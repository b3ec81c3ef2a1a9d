r"""NIR export (:func:`to_nir`) and import (:func:`from_nir`) of single-step nets."""

from __future__ import annotations

import graphlib
import math
import os
import re
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from ..core.functional import squeeze_time
from ..core.io import atomic_path
from ..core.modules import S2Cell
from ..errors import ConfigError, ConversionError, ShapeError
from ._common import check_out_path, prepare, require
from ._trace import Graph, IRNode, trace

__all__ = ["NIRNet", "from_nir", "to_nir", "write_nir"]

PathLike = Union[str, os.PathLike]

_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}
_STATEFUL = ("LIF", "IF", "LI", "I", "CubaLIF", "CubaLI", "Delay")


# --- export -------------------------------------------------------------------------


def _fold_norms(g: Graph) -> None:
    """Fold each norm into the Linear/Conv before it when that layer feeds only the norm."""
    for name in list(g.nodes):
        n = g.nodes.get(name)
        if n is None or n.op != "norm":
            continue
        (src,) = n.inputs
        prod = g.nodes[src]
        if prod.op not in ("affine", "conv") or g.consumers(src) != [name]:
            continue
        scale, shift = n.params["scale"], n.params["shift"]
        w = prod.params["weight"]
        if w.shape[0] != scale.numel():
            continue
        bias = prod.params["bias"]
        bias = torch.zeros(w.shape[0], dtype=torch.float64) if bias is None else bias
        prod.params["weight"] = w * scale.view((-1,) + (1,) * (w.ndim - 1))
        prod.params["bias"] = bias * scale + shift
        prod.where = f"{prod.where} with {n.where} folded in"
        for other in g.nodes.values():
            other.inputs = [src if i == name else i for i in other.inputs]
        del g.nodes[name]


def _dense(w: Tensor, groups: int) -> Tensor:
    """A grouped convolution's weight as the equivalent dense one (zeros across groups).

    ``nir.Conv1d/Conv2d`` derive their input channels from ``weight.shape[1]`` and ignore
    ``groups`` in type checking, so grouped weights are written out densely.
    """
    if groups == 1:
        return w
    out_g, in_g = w.shape[0] // groups, w.shape[1]
    dense = torch.zeros((w.shape[0], in_g * groups) + tuple(w.shape[2:]), dtype=w.dtype)
    for g in range(groups):
        dense[g * out_g : (g + 1) * out_g, g * in_g : (g + 1) * in_g] = w[
            g * out_g : (g + 1) * out_g
        ]
    return dense


def _sources(g: Graph, name: str) -> list[str]:
    node = g.nodes[name]
    if node.op != "sum":
        return [name]
    return [s for i in node.inputs for s in _sources(g, i)]


def _nir_node(g: Graph, n: IRNode, nir: Any) -> Any:
    dt = _NUMPY[g.dtype]

    def arr(t: Tensor) -> np.ndarray:
        return t.detach().to(torch.float64).numpy().astype(dt)

    def in_shape() -> tuple[int, ...]:
        return g.nodes[n.inputs[0]].shape

    p = n.params
    if n.op == "input":
        return nir.Input(input_type=np.array(n.shape))
    if n.op == "output":
        return nir.Output(output_type=np.array(n.shape))
    if n.op == "affine":
        if p["bias"] is None:
            return nir.Linear(weight=arr(p["weight"]))
        return nir.Affine(weight=arr(p["weight"]), bias=arr(p["bias"]))
    if n.op == "conv":
        w = _dense(p["weight"], p["groups"])
        bias = p["bias"] if p["bias"] is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        if p["dims"] == 1:
            return nir.Conv1d(
                input_shape=int(in_shape()[1]),
                weight=arr(w),
                stride=p["stride"][0],
                padding=p["padding"][0],
                dilation=p["dilation"][0],
                groups=1,
                bias=arr(bias),
            )
        return nir.Conv2d(
            input_shape=tuple(int(d) for d in in_shape()[1:]),
            weight=arr(w),
            stride=p["stride"],
            padding=p["padding"],
            dilation=p["dilation"],
            groups=1,
            bias=arr(bias),
        )
    if n.op == "norm":  # a norm that could not be folded: a per-channel affine map
        scale, shift = p["scale"], p["shift"]
        diag = torch.diag(scale)
        if len(n.shape) == 1:
            return nir.Affine(weight=arr(diag), bias=arr(shift))
        if len(n.shape) == 2:
            return nir.Conv1d(
                input_shape=int(n.shape[1]),
                weight=arr(diag[:, :, None]),
                stride=1,
                padding=0,
                dilation=1,
                groups=1,
                bias=arr(shift),
            )
        return nir.Conv2d(
            input_shape=tuple(n.shape[1:]),
            weight=arr(diag[:, :, None, None]),
            stride=(1, 1),
            padding=(0, 0),
            dilation=(1, 1),
            groups=1,
            bias=arr(shift),
        )
    if n.op == "flatten":
        return nir.Flatten(
            input_type={"input": np.array(p["in_shape"])}, start_dim=p["start"], end_dim=p["end"]
        )
    if n.op in ("avgpool", "sumpool"):
        cls = nir.AvgPool2d if n.op == "avgpool" else nir.SumPool2d
        return cls(
            kernel_size=np.array(p["kernel"]),
            stride=np.array(p["stride"]),
            padding=np.array(p["padding"]),
        )
    if n.op == "threshold":
        return nir.Threshold(threshold=p["threshold"].to(g.dtype).numpy().astype(dt))
    if n.op == "scale":
        return nir.Scale(scale=arr(p["scale"]))
    raise ConversionError(f"internal: no NIR node for op {n.op!r}")  # pragma: no cover


def graph_to_nir(g: Graph) -> Any:
    """The NIR graph of a traced net (norms folded, sums turned into edges)."""
    nir = require("nir", "NIR export")
    _fold_norms(g)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    for n in g.nodes.values():
        if n.op == "sum":
            continue
        nodes[n.name] = _nir_node(g, n, nir)
        for i in n.inputs:
            for s in _sources(g, i):
                if (s, n.name) in edges:
                    raise ConversionError(
                        f"{n.where or n.name} receives the same value twice through a sum; NIR "
                        "edges cannot repeat (rewrite the sum as a multiplication)"
                    )
                edges.append((s, n.name))
    from .. import __version__

    metadata = {
        "producer": "snn_singlestep",
        "producer_version": str(__version__),
        "threshold_rule": "spike iff input > threshold (nir.Threshold); the exported "
        "threshold is the largest float below the neuron's own threshold",
    }
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=True)
    except (ValueError, AssertionError) as err:  # pragma: no cover - a bug of ours or of nir
        raise ConversionError(
            f"the NIR graph built from the net does not type-check: {err}"
        ) from err


def write_nir(graph: Any, path: PathLike) -> Path:
    """Write a NIR graph with ``nir.write`` atomically: a temporary file next to ``path``
    replaces ``path`` only once complete (a failure leaves nothing behind).

    Raises:
        ConfigError: ``path`` cannot be written (missing or read-only directory, …).
    """
    nir = require("nir", "NIR export")
    if not isinstance(graph, nir.NIRGraph):
        raise ConfigError(
            f"write_nir: graph must be a nir.NIRGraph (e.g. from to_nir), got "
            f"{type(graph).__name__}"
        )
    path = check_out_path(path, "write_nir")
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return path


def to_nir(net: nn.Module, sample_input: Tensor, path: Optional[PathLike] = None) -> Any:
    r"""Export a single-step net to a NIR graph (``nir.NIRGraph``), optionally to a file.

    The net runs once on ``sample_input`` (in eval mode, on a copy) and every layer it
    calls becomes a NIR node:

    - ``Linear`` → ``Affine`` (``Linear`` when it has no bias);
    - ``Conv1d``, ``Conv2d`` → ``Conv1d``, ``Conv2d`` (grouped weights written densely);
    - ``BatchNorm1d/2d``, ``PSPNorm`` (eval, running statistics) → folded into the
      ``Linear``/``Conv`` before them, else a per-channel ``Affine`` or 1×1 ``Conv``;
    - ``S2Cell``, ``S2Neuron``, ``S2Node`` and the collapsed subclasses → ``Threshold``
      (then ``Scale`` for a ``graded_spikes_factor`` ≠ 1; an affine first-step membrane
      :math:`a x + b` is folded into the threshold);
    - ``AvgPool2d``, ``AdaptiveAvgPool2d`` (evenly dividing) → ``AvgPool2d``;
    - ``MaxPool2d`` of spikes → ``SumPool2d`` → ``Threshold(0.5)`` (exact on 0/1 input);
    - ``Flatten``, ``x.flatten(1)``, ``x.view(B, -1)`` → ``Flatten``;
    - ``a + b`` (residual) → both feed the next node (NIR sums incoming edges);
      ``x * c``, ``x / c``, ``-x`` → ``Scale``;
    - ``Identity``, ``Dropout`` (eval), removing a time axis of size 1 → nothing.

    Shapes in the graph are per sample (no batch axis). ``nir.Threshold`` fires on
    :math:`x > \vartheta` while our neurons fire on :math:`v \ge \theta`: each exported
    :math:`\vartheta` is the largest number of the sample's dtype below :math:`\theta`, so
    both rules give the same spikes, ties included (:func:`from_nir` undoes the shift).
    Folding a norm into the layer before it changes float rounding, so a membrane within
    rounding distance of :math:`\theta` may fire differently there; elsewhere spikes are
    identical.

    Args:
        net: a single-step net (no stateful neurons; see :func:`snn_singlestep.collapse`).
        sample_input: one batch ``[B, ...]`` (float32 or float64: the graph's dtype).
            ``[1, B, ...]`` is accepted for nets that remove a time axis of size 1
            themselves; SpikingJelly nets in step mode ``'m'`` take ``[1, B, ...]``.
        path: if given, the graph is also written there with ``nir.write`` (atomically).

    Returns:
        The ``nir.NIRGraph``; nodes are named after the module paths, with ``input`` and
        ``output`` (``output_0``, ``output_1``, … when the net returns several tensors).

    Raises:
        ConversionError: a stateful neuron, or a module/operation with no NIR node (the
            message names the module path and class).
        ShapeError: the net does not run on ``sample_input``, or a time axis T > 1.
        ConfigError: ``sample_input`` is not a float tensor, or ``path`` is not writable.
        ImportError: ``nir`` is missing (``pip install snn_singlestep[deploy]``).

    Examples:
        >>> import pytest; _ = pytest.importorskip("nir")  # part of the deploy extra
        >>> import torch
        >>> from torch import nn
        >>> from snn_singlestep import S2Cell
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), S2Cell(1.0), nn.Linear(3, 2))
        >>> graph = to_nir(net.eval(), torch.rand(8, 4))
        >>> {name: type(node).__name__ for name, node in graph.nodes.items()}
        {'input': 'Input', '0': 'Affine', '2': 'Threshold', '3': 'Affine', 'output': 'Output'}
        >>> float(graph.nodes["2"].threshold[0]) < 1.0  # largest float32 below 1.0
        True
    """
    require("nir", "NIR export")
    out_path = None if path is None else check_out_path(path, "to_nir")
    work, x, _ = prepare(net, sample_input, "export the net to NIR")
    graph = graph_to_nir(trace(work, x))
    if out_path is not None:
        write_nir(graph, out_path)
    return graph


# --- import -------------------------------------------------------------------------


class _Scale(nn.Module):
    """``x * scale`` (a ``nir.Scale`` node)."""

    def __init__(self, scale: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


def _ints(value: Any) -> tuple[int, ...]:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        raise TypeError
    return tuple(int(v) for v in np.atleast_1d(np.asarray(value)).ravel())


def _padding(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "SUO":
        value = value.item()
        value = value.decode() if isinstance(value, bytes) else value
    return value if isinstance(value, str) else _ints(value)


def _tensor(a: Any) -> Tensor:
    t = torch.from_numpy(np.array(a, copy=True))
    return t if t.is_floating_point() else t.double()


def _spike_threshold(a: Any) -> Tensor:
    """The S² threshold θ (spike iff x ≥ θ) of a NIR threshold ϑ (spike iff x > ϑ)."""
    t = _tensor(a)
    theta = torch.nextafter(t, torch.full_like(t, math.inf))
    if theta.numel() and bool((theta == theta.reshape(-1)[0]).all()):
        return theta.reshape(-1)[0].clone()
    return theta


def _module(name: str, node: Any, nir: Any) -> nn.Module:
    kind = type(node).__name__
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = _tensor(node.weight)
        if w.ndim != 2:
            raise ConversionError(
                f"NIR node {name!r} ({kind}) has a weight of shape {tuple(w.shape)}, not 2-d"
            )
        has_bias = isinstance(node, nir.Affine)
        lin = nn.Linear(w.shape[1], w.shape[0], bias=has_bias, dtype=w.dtype)
        with torch.no_grad():
            lin.weight.copy_(w)
            if has_bias:
                lin.bias.copy_(_tensor(node.bias).reshape(-1))
        return lin
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        w = _tensor(node.weight)
        dims = 1 if isinstance(node, nir.Conv1d) else 2
        if w.ndim != dims + 2:
            raise ConversionError(
                f"NIR node {name!r} ({kind}) has a weight of shape {tuple(w.shape)}"
            )
        groups = int(np.asarray(node.groups))
        bias = _tensor(node.bias).reshape(-1) if node.bias is not None else None
        has_bias = bias is not None and bool((bias != 0).any())
        cls = nn.Conv1d if dims == 1 else nn.Conv2d
        conv = cls(
            w.shape[1] * groups,
            w.shape[0],
            tuple(w.shape[2:]),
            stride=_ints(node.stride),
            padding=_padding(node.padding),
            dilation=_ints(node.dilation),
            groups=groups,
            bias=has_bias,
            dtype=w.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(w)
            if has_bias:
                conv.bias.copy_(bias)
        return conv
    if isinstance(node, nir.Flatten):
        start, end = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
        return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        kernel, stride, padding = _ints(node.kernel_size), _ints(node.stride), _ints(node.padding)
        kernel = kernel * 2 if len(kernel) == 1 else kernel
        stride = stride * 2 if len(stride) == 1 else stride
        padding = padding * 2 if len(padding) == 1 else padding
        divisor = 1 if isinstance(node, nir.SumPool2d) else None
        return nn.AvgPool2d(kernel, stride, padding, divisor_override=divisor)
    if isinstance(node, nir.Threshold):
        return S2Cell(_spike_threshold(node.threshold))
    if isinstance(node, nir.Scale):
        return _Scale(_tensor(node.scale))
    if kind in _STATEFUL:
        raise ConversionError(
            f"NIR node {name!r} is a {kind}: a neuron or delay with state over time. from_nir "
            "builds single-step nets, which keep no state between calls; it imports graphs of "
            "Affine/Linear/Conv/Flatten/pooling/Scale/Threshold nodes (as written by to_nir). "
            "Collapse the multi-step net to single-step neurons before exporting it."
        )
    if isinstance(node, nir.NIRGraph):
        raise ConversionError(
            f"NIR node {name!r} is a nested NIRGraph (e.g. a recurrent layer); from_nir imports "
            "flat, feed-forward graphs only"
        )
    raise ConversionError(f"NIR node {name!r} of type {kind} has no single-step equivalent")


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _key(name: str, taken: set[str]) -> str:
    key = re.sub(r"\W", "_", name) or "node"
    key = f"n_{key}" if key[0].isdigit() else key
    base, i = key, 1
    while key in taken:
        key, i = f"{base}_{i}", i + 1
    taken.add(key)
    return key


class NIRNet(nn.Module):
    r"""A single-step net rebuilt from a NIR graph by :func:`from_nir`.

    Runs the graph's nodes in topological order; a node with several incoming edges gets
    their sum (NIR semantics). ``Threshold`` nodes become :class:`~snn_singlestep.S2Cell`
    neurons (threshold :math:`\theta` = the next float above the NIR threshold, so that
    ``x >= θ`` is ``x > ϑ``), ``Affine``/``Linear`` → ``nn.Linear``, ``Conv1d``/``Conv2d``
    → ``nn.Conv1d``/``nn.Conv2d``, ``Flatten`` → ``nn.Flatten``, ``AvgPool2d`` →
    ``nn.AvgPool2d``, ``SumPool2d`` → ``nn.AvgPool2d(divisor_override=1)``, ``Scale`` →
    multiplication. The modules live in ``self.layers`` (keys derived from node names;
    ``self.node_names`` maps them back).

    Input: ``[B, *input_shape]`` (or ``[1, B, *input_shape]``). Output: one tensor, or a
    tuple in the order of the output node names (``output_0``, ``output_1``, …).
    """

    def __init__(self, graph: Any) -> None:
        nir = require("nir", "NIR import")
        super().__init__()
        if not isinstance(graph, nir.NIRGraph):
            raise ConversionError(
                f"from_nir expects a nir.NIRGraph or a file, got {type(graph).__name__}"
            )
        inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
        outputs = sorted(
            (n for n, node in graph.nodes.items() if isinstance(node, nir.Output)), key=_natural
        )
        if len(inputs) != 1:
            raise ConversionError(
                f"from_nir needs a graph with exactly one Input node, got {len(inputs)}: {inputs}"
            )
        if not outputs:
            raise ConversionError("from_nir needs a graph with at least one Output node")
        for a, b in graph.edges:
            for end in (a, b):
                if end not in graph.nodes:
                    raise ConversionError(
                        f"NIR edge ({a!r}, {b!r}) names a node that does not exist"
                    )
        preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
        for a, b in graph.edges:
            preds[b].append(a)
        order = self._topological(preds)
        self.input_name = inputs[0]
        shape = graph.nodes[self.input_name].input_type["input"]
        self.input_shape = tuple(int(d) for d in np.asarray(shape).ravel())
        self.output_names = outputs
        self.layers = nn.ModuleDict()
        self.node_names: dict[str, str] = {}
        taken: set[str] = set()
        self.order: list[tuple[str, Optional[str], list[str]]] = []
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                continue
            if not preds[name]:
                raise ConversionError(f"NIR node {name!r} has no incoming edge")
            if isinstance(node, nir.Output):
                continue
            key = _key(name, taken)
            self.layers[key] = _module(name, node, nir)
            self.node_names[key] = name
            self.order.append((name, key, preds[name]))
        self.output_sources = {n: preds[n] for n in outputs}
        for n in outputs:
            if not preds[n]:
                raise ConversionError(f"NIR output node {n!r} has no incoming edge")

    @staticmethod
    def _topological(preds: dict[str, list[str]]) -> list[str]:
        """Node names, each after its predecessors (``graphlib``); ConversionError on a cycle."""
        try:
            return list(graphlib.TopologicalSorter(preds).static_order())
        except graphlib.CycleError as err:
            cyclic = sorted(set(err.args[1]))
            raise ConversionError(
                f"the NIR graph has a cycle through {cyclic}: recurrent connections carry state "
                "from one time step to the next, which a single-step net does not have"
            ) from None

    def forward(self, x: Tensor) -> Union[Tensor, tuple[Tensor, ...]]:
        x = squeeze_time(x, sample_ndim=1 + len(self.input_shape))
        if tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(
                f"this net takes samples of shape {self.input_shape} ([B, "
                f"{', '.join(map(str, self.input_shape))}]), got input of shape {tuple(x.shape)}"
            )
        values: dict[str, Tensor] = {self.input_name: x}

        def gather(sources: list[str]) -> Tensor:
            total = values[sources[0]]
            for s in sources[1:]:
                total = total + values[s]
            return total

        for name, key, sources in self.order:
            values[name] = self.layers[key](gather(sources))
        outs = tuple(gather(self.output_sources[n]) for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, outputs={self.output_names}"


def from_nir(graph: Any) -> NIRNet:
    r"""Build a single-step net (:class:`NIRNet`) from a NIR graph or a NIR file.

    Only stateless nodes are accepted: ``Input``, ``Output``, ``Affine``, ``Linear``,
    ``Conv1d``, ``Conv2d``, ``Flatten``, ``AvgPool2d``, ``SumPool2d``, ``Scale`` and
    ``Threshold``, wired without cycles. ``from_nir(to_nir(net, x))`` computes what ``net``
    computes (identical spikes and outputs for nets without folded norms; with norms
    folded, up to float rounding).

    Args:
        graph: a ``nir.NIRGraph``, or the path of a file written by ``nir.write``.

    Raises:
        ConversionError: a stateful node (``LIF``, ``IF``, ``CubaLIF``, ``LI``, ``I``,
            ``Delay``), a nested graph, a cycle, or an unknown node (the message names it).
        ImportError: ``nir`` is missing (``pip install snn_singlestep[deploy]``).

    Examples:
        >>> import pytest; _ = pytest.importorskip("nir")  # part of the deploy extra
        >>> import torch
        >>> from torch import nn
        >>> from snn_singlestep import S2Cell
        >>> net = nn.Sequential(nn.Linear(4, 3), S2Cell(0.5), nn.Linear(3, 2)).eval()
        >>> x = torch.rand(8, 4)
        >>> rebuilt = from_nir(to_nir(net, x))
        >>> torch.equal(rebuilt(x), net(x))
        True
    """
    nir = require("nir", "NIR import")
    if isinstance(graph, (str, os.PathLike)):
        path = Path(graph)
        if not path.is_file():
            raise ConfigError(f"from_nir: {str(path)!r} does not exist or is not a file")
        try:
            graph = nir.read(path)
        except Exception as err:
            first = (str(err).splitlines() or [type(err).__name__])[0]
            raise ConversionError(
                f"from_nir: {str(path)!r} is not a readable NIR file ({first})"
            ) from None
    return NIRNet(graph).eval()
