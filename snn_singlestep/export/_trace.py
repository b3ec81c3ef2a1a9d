r"""Eager tracer: run a single-step net once and record its dataflow as a small graph.

The net runs for real on the sample input, so its Python control flow, forward hooks
(e.g. the input hook that :func:`snn_singlestep.collapse` installs) and shape checks
behave exactly as in use. Two mechanisms record what happens:

- forward hooks on every module: a module of a known class (``Linear``, ``Conv2d``,
  ``BatchNorm2d``, :class:`~snn_singlestep.core.psp.PSPNorm`, the single-step neurons, …)
  becomes one node, built from its parameters; what runs inside it is not looked at;
- a :class:`~torch.utils._python_dispatch.TorchDispatchMode`: the tensor operations between
  known modules (``x.flatten(1)``, ``out + identity``, ``x * 0.5``, …) are recorded one by
  one as the ATen operators they reach (``aten.view``, ``aten.add``, ``aten.mul``, …: a
  dozen operators instead of every Python spelling of them); an operation with no NIR
  counterpart raises :class:`~snn_singlestep.errors.ConversionError` naming the operator
  and the module whose forward calls it.

Every node is checked on the sample: the module's actual output must equal what the
node computes from the module's actual input (exactly for spikes; to float rounding for
affine maps), so a subclass that changes ``forward`` is refused, not exported wrongly.

Values carry a *lead*: the number of leading axes that are not part of one sample
(1 = batch; 2 = a time axis of size 1, then batch). Node shapes are per sample.

Why our own tracer, and not torch.fx / nirtorch (which snnTorch's ``export_to_nir`` and
SpikingJelly's ``nir_exchange`` use) or ``torch.export``: none of them (1) checks each node
against what the module actually computed on the sample, so a subclass that changes its
firing rule is refused rather than exported wrongly; (2) turns a neuron's ``v >= θ`` into
NIR's strict ``x > ϑ`` by shifting the threshold to the next float below (ties included)
and folds an affine first-step membrane ``a·x + b`` into it; (3) knows our neurons at all
(nirtorch looks modules up by exact class in a fixed map; fx then traces into the neuron
and fails on ``v - θ``). What the tracer knows about neurons comes from
:mod:`snn_singlestep.core.registry`. See ``docs/deploying.md``, "Why not
spikingjelly.activation_based.nir_exchange".
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..core import registry
from ..core.psp import PSPNorm
from ..errors import ConversionError
from ._common import describe

__all__ = ["Graph", "IRNode", "firing_threshold", "trace"]


@dataclass
class IRNode:
    """One node: ``op`` is input, output, affine, conv, norm, flatten, avgpool, sumpool,
    threshold, scale or sum (a sum is not a NIR node: it becomes several edges)."""

    name: str
    op: str
    inputs: list[str]
    shape: tuple[int, ...]
    params: dict[str, Any] = field(default_factory=dict)
    where: str = ""


@dataclass
class Graph:
    """The traced net: nodes in execution order, one input, the outputs in return order."""

    nodes: dict[str, IRNode]
    input: str
    outputs: list[str]
    dtype: torch.dtype

    def consumers(self, name: str) -> list[str]:
        return [n.name for n in self.nodes.values() if name in n.inputs]


@dataclass
class _Val:
    tensor: Tensor
    node: Optional[str]
    lead: int = 1
    binary: bool = False
    poison: Optional[str] = None

    @property
    def per(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape[self.lead :])


_IO_NAME = re.compile(r"^(input|output)(_\d+)?$")


def _pair(value: Any, name: str, where: str) -> tuple[int, int]:
    if isinstance(value, numbers.Integral):
        return (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return (value[0], value[0])
    if len(value) != 2:
        raise ConversionError(f"{where}: {name}={value!r} is not a pair")
    return value  # type: ignore[return-value]


def _ceil_to(t: Tensor, dtype: torch.dtype) -> Tensor:
    """The smallest value of ``dtype`` that is >= ``t`` (elementwise, ``t`` in float64)."""
    s = t.to(dtype)
    return torch.where(s.double() < t, torch.nextafter(s, torch.full_like(s, math.inf)), s)


def firing_threshold(
    theta: Any, x_dtype: torch.dtype, membrane: Optional[tuple[Tensor, Tensor]] = None
) -> Tensor:
    r"""NIR threshold :math:`\vartheta` (strict: spike iff :math:`x > \vartheta`) of a neuron.

    The neuron fires iff :math:`m(x) - \theta \ge 0` computed by torch in ``x_dtype``, with
    :math:`m(x) = x` or :math:`a x + b`. Returns, in ``x_dtype``, the largest value below
    the smallest ``x_dtype`` number that fires, so that ``x > result`` holds exactly when
    the neuron fires (exactly for :math:`m(x) = x`; for an affine membrane, up to the
    rounding of :math:`a x + b`).

    Torch computes ``v - theta`` in ``x_dtype`` when ``theta`` is a Python number or a 0-d
    tensor (``theta`` is rounded to ``x_dtype`` first), and in ``theta``'s dtype when that
    is wider and ``theta`` has dimensions.
    """
    th = (
        theta.detach()
        if isinstance(theta, Tensor)
        else torch.tensor(float(theta), dtype=torch.float64)
    )
    if not th.is_floating_point():
        th = th.double()
    if membrane is None:
        if th.ndim == 0 or torch.promote_types(th.dtype, x_dtype) == x_dtype:
            first = th.to(x_dtype)
        else:
            first = _ceil_to(th.double(), x_dtype)
    else:
        a, b = membrane
        first = _ceil_to((th.double() - b.double()) / a.double(), x_dtype)
    return torch.nextafter(first, torch.full_like(first, -math.inf))


def _per_sample(t: Tensor, full: tuple[int, ...], lead: int, what: str, where: str) -> Tensor:
    """``t`` broadcast to a batch of shape ``full``, as one sample (all samples must agree)."""
    try:
        b = torch.broadcast_to(t, full)
    except RuntimeError:
        raise ConversionError(
            f"{where}: its {what} of shape {tuple(t.shape)} does not broadcast to the "
            f"activations {full}"
        ) from None
    rows = b.reshape((-1,) + tuple(full[lead:]))
    if not bool((rows == rows[:1]).all()):
        raise ConversionError(f"{where}: its {what} differs between samples of a batch")
    return rows[0].clone()


class _Abort(BaseException):
    """Carries a ConversionError out of the net's forward.

    ConversionError is a TypeError, and torch turns a TypeError raised inside a binary
    operator (``a + b``) into NotImplemented; user code may also catch Exception. A
    BaseException passes through both; :func:`trace` re-raises the error it carries.
    """

    def __init__(self, error: ConversionError) -> None:
        super().__init__(str(error))
        self.error = error


class _Tracer(TorchDispatchMode):
    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self.nodes: dict[str, IRNode] = {}
        self.vals: dict[int, _Val] = {}
        self.frames: list[tuple] = []
        self.leaf_depth = 0
        self.input_name = ""
        self.output_names: list[str] = []

    # --- values and nodes -------------------------------------------------------------
    def get(self, t: Any) -> Optional[_Val]:
        if not isinstance(t, Tensor):
            return None
        v = self.vals.get(id(t))
        return v if v is not None and v.tensor is t else None

    def put(self, t: Tensor, val: _Val) -> None:
        self.vals[id(t)] = replace(val, tensor=t)

    def add_node(
        self, op: str, inputs: list[str], shape, params=None, base: str = "", where: str = ""
    ) -> str:
        base = base or op
        if op not in ("input", "output") and _IO_NAME.match(base):
            base = f"{base}_node"
        name, i = base, 1
        while name in self.nodes:
            name, i = f"{base}_{i}", i + 1
        self.nodes[name] = IRNode(
            name, op, list(inputs), tuple(int(d) for d in shape), params or {}, where
        )
        return name

    def where(self) -> str:
        for frame in reversed(self.frames):
            if frame[0] == "container":
                return describe(frame[1], frame[2])
        return "the top-level forward"

    def base(self, suffix: str) -> str:
        for frame in reversed(self.frames):
            if frame[0] == "container" and frame[2]:
                return f"{frame[2]}.{suffix}"
        return suffix

    def use(self, v: _Val, where: str) -> _Val:
        if v.poison:
            raise ConversionError(f"{where} uses {v.poison}, which cannot be exported")
        return v

    # --- input / output ---------------------------------------------------------------
    def add_input(self, x: Tensor) -> None:
        self.input_name = self.add_node("input", [], x.shape[1:], base="input")
        self.put(x, _Val(x, self.input_name, 1))

    def finish(self, out: Any) -> None:
        leaves = [t for t in tree_leaves(out) if isinstance(t, Tensor)]
        if not leaves:
            raise ConversionError("the net returns no tensor; there is nothing to export")
        for i, t in enumerate(leaves):
            v = self.get(t)
            label = "the output" if len(leaves) == 1 else f"output {i}"
            if v is None:
                raise ConversionError(
                    f"{label} of the net does not depend on its input (or is computed by "
                    "an operation the exporter did not see); it cannot be exported"
                )
            self.use(v, f"{label} of the net")
            name = "output" if len(leaves) == 1 else f"output_{i}"
            self.output_names.append(self.add_node("output", [v.node], v.per, base=name))

    # --- module hooks -----------------------------------------------------------------
    def pre(self, path: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
        try:
            return self._pre(path, module, args, kwargs)
        except ConversionError as err:
            raise _Abort(err) from None

    def post(self, path: str, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        try:
            return self._post(path, module, args, kwargs, output)
        except ConversionError as err:
            raise _Abort(err) from None

    def _pre(self, path: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.leaf_depth:
            self.leaf_depth += 1
            self.frames.append(("inner", module, path))
            return
        handler = _leaf_handler(module)
        if handler is not None:
            self.leaf_depth = 1
            self.frames.append(("leaf", module, path, args, kwargs, handler))
        else:
            self.frames.append(("container", module, path))

    def _post(self, path: str, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        frame = self.frames.pop()
        if frame[0] == "inner":
            self.leaf_depth -= 1
        elif frame[0] == "leaf":
            _, m, p, a, kw, handler = frame
            where = describe(m, p)
            inputs = [t for t in tree_leaves((a, kw)) if isinstance(t, Tensor)]
            v = self.get(inputs[0]) if inputs else None
            if v is None:
                raise ConversionError(
                    f"{where} receives a tensor that does not depend on the net's input "
                    "(or comes from an operation the exporter did not see)"
                )
            try:  # the handler's own checks run with recording still off
                handler(self, m, p, self.use(v, where), output)
            finally:
                self.leaf_depth = 0

    # --- tensor operations between modules --------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.leaf_depth == 0:
            try:
                self._record(func, args, kwargs, out)
            except ConversionError as err:
                raise _Abort(err) from None
        return out

    def _record(self, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
        name = str(func.overloadpacket)  # aten.add, aten.view, ...
        if torch.Tag.nondeterministic_seeded in func.tags:
            raise ConversionError(
                f"{self.where()} calls {name}, which draws random numbers (dropout in "
                "training mode, noise); an exported graph is deterministic"
            )
        tracked = [v for t in tree_leaves((args, kwargs)) if (v := self.get(t)) is not None]
        if not tracked or not any(isinstance(t, Tensor) for t in tree_leaves(out)):
            return  # constants, or shape queries
        where = f"{name} in {self.where()}"
        for v in tracked:
            self.use(v, where)
        if func.overloadpacket in _CONSTANT_LIKE:
            return
        handler = _OPS.get(func.overloadpacket)
        if handler is None:
            raise ConversionError(
                f"{self.where()} calls {name} on the net's activations; NIR has no node "
                "for it. Between layers the exporter understands flatten/view/reshape, "
                "addition of two activations, multiplication by constants, dropout in "
                "eval mode and removing a time axis of size 1."
            )
        handler(self, name, where, args, kwargs, out)


# --- operations ---------------------------------------------------------------------


def _only_tensor(out: Any, where: str) -> Tensor:
    if not isinstance(out, Tensor):
        raise ConversionError(f"{where} returns {type(out).__name__}, not a tensor")
    return out


def _op_alias(tr: _Tracer, name: str, where: str, args, kwargs, out) -> None:
    src = tr.get(args[0])
    out = _only_tensor(out, where)
    if src is None or out.shape != src.tensor.shape:
        raise ConversionError(f"{where}: unsupported use")
    if out.dtype != src.tensor.dtype:
        raise ConversionError(
            f"{where} changes the dtype from {src.tensor.dtype} to {out.dtype}; the exported "
            "graph has one dtype (that of sample_input)"
        )
    tr.put(out, src)


def _time_squeeze(tr: _Tracer, src: _Val, out: Tensor, where: str) -> None:
    if src.lead != 2 or src.tensor.shape[0] != 1:
        raise ConversionError(
            f"{where} indexes or squeezes axis 0, which is the batch axis here; only a "
            "leading time axis of size 1 may be removed"
        )
    tr.put(out, replace(src, lead=1))


def _op_slice(tr: _Tracer, name: str, where: str, args, kwargs, out) -> None:
    src = tr.get(args[0])
    out = _only_tensor(out, where)
    if out.shape != src.tensor.shape:  # x[:], x[..., :] keep everything
        raise ConversionError(f"{where}: slicing activations has no NIR node")
    tr.put(out, src)


def _op_squeeze(tr: _Tracer, name: str, where: str, args, kwargs, out) -> None:
    src = tr.get(args[0])
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    if dim in (0, (0,), [0]):
        return _time_squeeze(tr, src, _only_tensor(out, where), where)
    raise ConversionError(f"{where}: squeezing axis {dim!r} has no NIR node")


def _op_select(tr: _Tracer, name: str, where: str, args, kwargs, out) -> None:
    src = tr.get(args[0])
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    index = args[2] if len(args) > 2 else kwargs.get("index")
    if dim == 0 and index == 0:
        return _time_squeeze(tr, src, _only_tensor(out, where), where)
    raise ConversionError(f"{where}: selecting ({dim!r}, {index!r}) has no NIR node")


def _op_unsqueeze(tr: _Tracer, name: str, where: str, args, kwargs, out) -> None:
    src = tr.get(args[0])
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    if dim == 0 and src.lead == 1:
        return tr.put(_only_tensor(out, where), replace(src, lead=2))
    raise ConversionError(
        f"{where}: unsqueeze({dim!r}) has no NIR node (only a time axis of size 1 in front "
        "of the batch axis is understood)"
    )


def _flatten(
    tr: _Tracer, src: _Val, start: int, end: int, out: Tensor, where: str, base: str
) -> None:
    nd = src.tensor.ndim
    s, e = start % nd if nd else 0, end % nd if nd else 0
    if s > e:
        raise ConversionError(f"{where}: flatten({start}, {end}) is empty")
    if s < src.lead:
        if src.lead == 2 and s == 0 and e == 1 and src.tensor.shape[0] == 1:
            return tr.put(out, replace(src, lead=1))  # merges a time axis of size 1 into B
        raise ConversionError(f"{where} flattens the batch axis; flatten from axis 1 on")
    ps, pe = s - src.lead, e - src.lead
    if ps == pe:
        return tr.put(out, src)
    node = tr.add_node(
        "flatten",
        [src.node],
        out.shape[src.lead :],
        {"start": ps, "end": pe, "in_shape": src.per},
        base=base,
        where=where,
    )
    tr.put(out, _Val(out, node, src.lead, src.binary))


def _op_reshape(tr: _Tracer, name: str, where: str, args, kwargs, out) -> None:
    src = tr.get(args[0])
    out = _only_tensor(out, where)
    full_in, full_out, lead = tuple(src.tensor.shape), tuple(out.shape), src.lead
    if full_out[:lead] == full_in[:lead]:
        pin, pout = full_in[lead:], full_out[lead:]
        if pin == pout:
            return tr.put(out, src)
        for i in range(len(pin)):
            for j in range(i + 1, len(pin)):
                if pin[:i] + (math.prod(pin[i : j + 1]),) + pin[j + 1 :] == pout:
                    return _flatten(tr, src, i + lead, j + lead, out, where, tr.base("flatten"))
    if lead == 2 and full_in[0] == 1 and full_out == full_in[1:]:
        return tr.put(out, replace(src, lead=1))
    if lead == 1 and full_out == (1,) + full_in:
        return tr.put(out, replace(src, lead=2))
    raise ConversionError(
        f"{where} reshapes {full_in} to {full_out}; only flattening consecutive axes of a "
        "sample has a NIR node (Flatten)"
    )


def _is_zero(c: Any) -> bool:
    if isinstance(c, Tensor):
        return bool((c == 0).all())
    return isinstance(c, numbers.Number) and c == 0


def _other(args, kwargs) -> Any:
    return args[1] if len(args) > 1 else kwargs.get("other")


def _scale(tr: _Tracer, src: _Val, factor: Any, out: Tensor, where: str, base: str) -> None:
    f = (
        factor.detach().double()
        if isinstance(factor, Tensor)
        else torch.tensor(float(factor), dtype=torch.float64)
    )
    per = _per_sample(f, tuple(out.shape), src.lead, "factor", where)
    if out.shape != src.tensor.shape:
        raise ConversionError(f"{where} broadcasts the activations to a new shape")
    if bool((per == 1).all()):
        return tr.put(out, src)
    node = tr.add_node("scale", [src.node], src.per, {"scale": per}, base=base, where=where)
    tr.put(out, _Val(out, node, src.lead, False))


def _op_add(tr: _Tracer, name: str, where: str, args, kwargs, out, sign: float = 1.0) -> None:
    a, b = args[0], _other(args, kwargs)
    out = _only_tensor(out, where)
    if kwargs.get("alpha", 1) != 1:
        raise ConversionError(f"{where}: add/sub with alpha != 1 has no NIR node")
    va, vb = tr.get(a), tr.get(b)
    if va is not None and vb is not None:
        if va.lead != vb.lead or va.per != vb.per or out.shape != va.tensor.shape:
            raise ConversionError(
                f"{where} adds activations of shapes {tuple(va.tensor.shape)} and "
                f"{tuple(vb.tensor.shape)}; NIR sums only inputs of the same shape"
            )
        if sign < 0:
            neg = tr.add_node(
                "scale",
                [vb.node],
                vb.per,
                {"scale": torch.full(vb.per, -1.0, dtype=torch.float64)},
                base=tr.base("neg"),
                where=where,
            )
            vb = _Val(vb.tensor, neg, vb.lead)
        if va.node == vb.node:
            return _scale(tr, va, 2.0, out, where, tr.base("add"))
        node = tr.add_node("sum", [va.node, vb.node], va.per, base=tr.base("add"), where=where)
        return tr.put(out, _Val(out, node, va.lead, False))
    v, c = (va, b) if va is not None else (vb, a)
    if sign < 0 and va is None:
        raise ConversionError(f"{where} subtracts the activations from a constant; no NIR node")
    if _is_zero(c) and out.shape == v.tensor.shape:
        return tr.put(out, v)
    raise ConversionError(
        f"{where} adds a constant to the activations (a bias); NIR has no bias-only node. "
        "Put the bias in the preceding Linear/Conv layer instead."
    )


def _op_sub(tr: _Tracer, name: str, where: str, args, kwargs, out) -> None:
    _op_add(tr, name, where, args, kwargs, out, sign=-1.0)


def _op_mul(tr: _Tracer, name: str, where: str, args, kwargs, out) -> None:
    a, b = args[0], _other(args, kwargs)
    va, vb = tr.get(a), tr.get(b)
    if va is not None and vb is not None:
        raise ConversionError(f"{where} multiplies two activations; NIR has no node for that")
    v, c = (va, b) if va is not None else (vb, a)
    _scale(tr, v, c, _only_tensor(out, where), where, tr.base("scale"))


def _op_div(tr: _Tracer, name: str, where: str, args, kwargs, out) -> None:
    a, b = args[0], _other(args, kwargs)
    if tr.get(b) is not None or kwargs.get("rounding_mode") is not None:
        raise ConversionError(f"{where}: dividing by activations / rounding has no NIR node")
    c = (
        b.detach().double()
        if isinstance(b, Tensor)
        else torch.tensor(float(b), dtype=torch.float64)
    )
    _scale(tr, tr.get(a), 1.0 / c, _only_tensor(out, where), where, tr.base("scale"))


def _op_neg(tr: _Tracer, name: str, where: str, args, kwargs, out) -> None:
    _scale(tr, tr.get(args[0]), -1.0, _only_tensor(out, where), where, tr.base("neg"))


aten = torch.ops.aten

# ATen operator packets (all overloads, in-place variants listed apart) → handler.
_OPS: dict[Any, Callable] = {
    **dict.fromkeys(
        (aten.alias, aten.clone, aten.detach, aten.detach_, aten._to_copy, aten.lift_fresh),
        _op_alias,
    ),
    **dict.fromkeys((aten.view, aten._unsafe_view, aten.reshape), _op_reshape),
    aten.select: _op_select,
    aten.slice: _op_slice,
    aten.squeeze: _op_squeeze,
    aten.unsqueeze: _op_unsqueeze,
    **dict.fromkeys((aten.add, aten.add_), _op_add),
    **dict.fromkeys((aten.sub, aten.sub_), _op_sub),
    **dict.fromkeys((aten.mul, aten.mul_), _op_mul),
    **dict.fromkeys((aten.div, aten.div_), _op_div),
    **dict.fromkeys((aten.neg, aten.neg_), _op_neg),
}

# Results that do not depend on the values of the activations (only on their shape).
_CONSTANT_LIKE = {
    aten.full_like,
    aten.zeros_like,
    aten.ones_like,
    aten.empty_like,
    aten.new_zeros,
    aten.new_ones,
    aten.new_full,
    aten.new_empty,
}


# --- modules ------------------------------------------------------------------------


def _verify_close(actual: Any, expected: Tensor, where: str) -> Tensor:
    actual = _only_tensor(actual, where)
    if actual.shape != expected.shape:
        raise ConversionError(
            f"{where} returns shape {tuple(actual.shape)} where its class computes "
            f"{tuple(expected.shape)}; a subclass that changes forward cannot be exported"
        )
    tol = 1e-5 * max(1.0, float(expected.abs().max())) if expected.numel() else 0.0
    if not torch.allclose(actual.double(), expected.double(), rtol=1e-5, atol=tol):
        diff = float((actual.double() - expected.double()).abs().max())
        raise ConversionError(
            f"{where} does not compute what its class computes (max difference {diff:.3g} on "
            "the sample input); a subclass that changes forward cannot be exported"
        )
    return actual


def _need_lead1(v: _Val, where: str) -> None:
    if v.lead != 1:
        raise ConversionError(f"{where} receives a time axis in front of the batch axis")


def _linear(tr: _Tracer, m: nn.Linear, path: str, v: _Val, output: Any) -> None:
    where = describe(m, path)
    if len(v.per) != 1:
        raise ConversionError(
            f"{where} receives samples of shape {v.per}; NIR Affine/Linear nodes take vectors "
            "(flatten the sample first)"
        )
    out = _verify_close(output, nn.Linear.forward(m, v.tensor), where)
    bias = None if m.bias is None else m.bias.detach().double().clone()
    params = {"weight": m.weight.detach().double().clone(), "bias": bias}
    node = tr.add_node("affine", [v.node], out.shape[v.lead :], params, base=path, where=where)
    tr.put(out, _Val(out, node, v.lead))


def _conv_padding(m: nn.Module, where: str) -> tuple[int, ...]:
    if m.padding_mode != "zeros":
        raise ConversionError(
            f"{where}: padding_mode={m.padding_mode!r}; NIR convolutions pad with zeros"
        )
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return (0,) * len(m.kernel_size)
        pads = []
        for k, d in zip(m.kernel_size, m.dilation):
            total = d * (k - 1)
            if total % 2:
                raise ConversionError(f"{where}: padding='same' is asymmetric for kernel {k}")
            pads.append(total // 2)
        return tuple(pads)
    return tuple(int(p) for p in m.padding)


def _conv(tr: _Tracer, m: nn.Module, path: str, v: _Val, output: Any) -> None:
    where = describe(m, path)
    dims = 1 if isinstance(m, nn.Conv1d) else 2
    _need_lead1(v, where)
    if len(v.per) != dims + 1:
        raise ConversionError(
            f"{where} receives samples of shape {v.per}, not [C, ...] with {dims} spatial axes"
        )
    base = nn.Conv1d if dims == 1 else nn.Conv2d
    out = _verify_close(output, base.forward(m, v.tensor), where)
    params = {
        "dims": dims,
        "weight": m.weight.detach().double().clone(),
        "bias": None if m.bias is None else m.bias.detach().double().clone(),
        "stride": tuple(int(s) for s in m.stride),
        "padding": _conv_padding(m, where),
        "dilation": tuple(int(d) for d in m.dilation),
        "groups": int(m.groups),
    }
    node = tr.add_node("conv", [v.node], out.shape[1:], params, base=path, where=where)
    tr.put(out, _Val(out, node, 1))


def _norm_node(
    tr: _Tracer, m: nn.Module, path: str, v: _Val, output: Any, scale: Tensor, shift: Tensor
) -> None:
    where = describe(m, path)
    _need_lead1(v, where)
    if len(v.per) not in (1, 2, 3) or v.per[0] != scale.numel():
        raise ConversionError(
            f"{where} receives samples of shape {v.per}; expected [C], [C, L] or [C, H, W]"
        )
    view = (1, -1) + (1,) * (len(v.per) - 1)
    expected = (v.tensor.double() * scale.view(view) + shift.view(view)).to(v.tensor.dtype)
    out = _verify_close(output, expected, where)
    node = tr.add_node(
        "norm", [v.node], v.per, {"scale": scale, "shift": shift}, base=path, where=where
    )
    tr.put(out, _Val(out, node, 1))


def _batchnorm(
    tr: _Tracer, m: nn.modules.batchnorm._BatchNorm, path: str, v: _Val, output: Any
) -> None:
    where = describe(m, path)
    if m.running_mean is None or m.running_var is None:
        raise ConversionError(
            f"{where} has no running statistics (track_running_stats=False), so it "
            "normalizes with batch statistics even in eval mode: not a fixed affine map"
        )
    c = m.num_features
    weight = (
        m.weight.detach().double() if m.weight is not None else torch.ones(c, dtype=torch.float64)
    )
    bias = m.bias.detach().double() if m.bias is not None else torch.zeros(c, dtype=torch.float64)
    scale = weight / torch.sqrt(m.running_var.double() + m.eps)
    shift = bias - m.running_mean.double() * scale
    _norm_node(tr, m, path, v, output, scale, shift)


def _pspnorm(tr: _Tracer, m: PSPNorm, path: str, v: _Val, output: Any) -> None:
    where = describe(m, path)
    if m.running_sq_mean is None:
        raise ConversionError(
            f"{where} has no running statistics (track_running_stats=False), so it "
            "normalizes with batch statistics even in eval mode: not a fixed affine map"
        )
    c = m.num_features
    scale = torch.rsqrt(m.running_sq_mean.double() + m.eps)
    shift = torch.zeros(c, dtype=torch.float64)
    if m.affine:
        scale = scale * m.weight.detach().double()
        shift = m.bias.detach().double().clone()
    _norm_node(tr, m, path, v, output, scale, shift)


def _pool_shape_check(v: _Val, where: str) -> None:
    _need_lead1(v, where)
    if len(v.per) != 3:
        raise ConversionError(
            f"{where} receives samples of shape {v.per}; NIR pools take [C, H, W]"
        )


def _pool_node(tr, kind: str, v, shape, kernel, stride, padding, path: str, where: str):
    """A NIR pooling node (``avgpool`` / ``sumpool``) reading ``v``."""
    attrs = {"kernel": kernel, "stride": stride, "padding": padding}
    return tr.add_node(kind, [v.node], shape, attrs, base=path, where=where)


def _avgpool(tr: _Tracer, m: nn.AvgPool2d, path: str, v: _Val, output: Any) -> None:
    where = describe(m, path)
    _pool_shape_check(v, where)
    kernel = _pair(m.kernel_size, "kernel_size", where)
    stride = _pair(m.stride if m.stride is not None else m.kernel_size, "stride", where)
    padding = _pair(m.padding, "padding", where)
    if m.ceil_mode or m.divisor_override is not None or (any(padding) and not m.count_include_pad):
        raise ConversionError(
            f"{where}: ceil_mode, divisor_override and count_include_pad=False with padding "
            "have no NIR AvgPool2d equivalent"
        )
    out = _verify_close(output, F.avg_pool2d(v.tensor, kernel, stride, padding), where)
    node = _pool_node(tr, "avgpool", v, out.shape[1:], kernel, stride, padding, path, where)
    tr.put(out, _Val(out, node, 1))


def _adaptive_avgpool(
    tr: _Tracer, m: nn.AdaptiveAvgPool2d, path: str, v: _Val, output: Any
) -> None:
    where = describe(m, path)
    _pool_shape_check(v, where)
    h, w = v.per[1:]
    size = (
        m.output_size
        if isinstance(m.output_size, (tuple, list))
        else (m.output_size, m.output_size)
    )
    oh, ow = (h if size[0] is None else int(size[0])), (w if size[1] is None else int(size[1]))
    if h % oh or w % ow:
        raise ConversionError(
            f"{where}: adaptive pooling of {h}×{w} to {oh}×{ow} has unequal windows; NIR "
            "AvgPool2d needs the size to divide evenly"
        )
    kernel = (h // oh, w // ow)
    out = _verify_close(output, F.avg_pool2d(v.tensor, kernel, kernel), where)
    node = _pool_node(tr, "avgpool", v, out.shape[1:], kernel, kernel, (0, 0), path, where)
    tr.put(out, _Val(out, node, 1))


def _maxpool(tr: _Tracer, m: nn.MaxPool2d, path: str, v: _Val, output: Any) -> None:
    where = describe(m, path)
    _pool_shape_check(v, where)
    if not v.binary:
        raise ConversionError(
            f"{where} max-pools real values; NIR has no max pooling. Max pooling of spikes "
            "(directly after a neuron) is exported exactly, as SumPool2d → Threshold."
        )
    kernel = _pair(m.kernel_size, "kernel_size", where)
    stride = _pair(m.stride if m.stride is not None else m.kernel_size, "stride", where)
    padding = _pair(m.padding, "padding", where)
    if _pair(m.dilation, "dilation", where) != (1, 1) or m.ceil_mode or m.return_indices:
        raise ConversionError(
            f"{where}: dilation, ceil_mode and return_indices have no NIR equivalent"
        )
    counts = F.avg_pool2d(
        v.tensor, kernel, stride, padding, count_include_pad=True, divisor_override=1
    )
    out = _only_tensor(output, where)
    if out.shape != counts.shape or not torch.equal(out, (counts > 0.5).to(out.dtype)):
        raise ConversionError(f"{where} does not compute max pooling of its binary input")
    pool = _pool_node(tr, "sumpool", v, counts.shape[1:], kernel, stride, padding, path, where)
    half = torch.full(counts.shape[1:], 0.5, dtype=tr.dtype)
    node = tr.add_node(
        "threshold", [pool], counts.shape[1:], {"threshold": half}, base=f"{path}.any", where=where
    )
    tr.put(out, _Val(out, node, 1, binary=True))


def _flatten_module(tr: _Tracer, m: nn.Flatten, path: str, v: _Val, output: Any) -> None:
    where = describe(m, path)
    _flatten(tr, v, m.start_dim, m.end_dim, _only_tensor(output, where), where, path or "flatten")


def _identity(tr: _Tracer, m: nn.Module, path: str, v: _Val, output: Any) -> None:
    where = describe(m, path)
    out = _only_tensor(output, where)
    if out.shape != v.tensor.shape or not torch.equal(out, v.tensor):
        raise ConversionError(f"{where} does not return its input unchanged in eval mode")
    tr.put(out, v)


# --- neurons ------------------------------------------------------------------------


def _own(m: nn.Module, name: str, base: type) -> bool:
    """Whether ``m``'s class redefines the method ``name`` of ``base``."""
    return getattr(type(m), name, None) is not getattr(base, name, None)


def _neuron_params(m: nn.Module, where: str) -> tuple[Any, Optional[Tensor]]:
    """``(threshold, gain)`` of a single-step neuron of ours; gain None when spikes are 0/1.

    Everything comes from the neuron's registry record
    (:class:`~snn_singlestep.core.registry.NeuronKind`): why this instance has no export,
    which methods define its firing rule, its threshold and its spike gain.

    Raises:
        ConversionError: the record refuses the instance (e.g. snnTorch inhibition), or its
            class overrides a firing method of the registered class without a ``membrane``
            method that would let the check below see its rule.
    """
    kind = registry.neuron_kind(m)
    if kind is None or not kind.single_step:  # pragma: no cover - checked by the caller
        raise ConversionError(f"{where} is not a single-step neuron")
    reason = kind.export_refusal(m)
    if reason:
        raise ConversionError(f"{where}: {reason}")
    if not callable(getattr(m, "membrane", None)):
        overridden = [n for n in kind.firing_methods if _own(m, n, kind.cls)]
        if overridden:
            raise ConversionError(
                f"{where} overrides {', '.join(overridden)} of "
                f"{registry.qualname(kind.cls)}; its firing rule is unknown"
            )
    return registry.threshold_of(m), kind.spike_gain(m)


def _membrane_map(
    m: nn.Module, x: Tensor, lead: int, where: str
) -> Optional[tuple[Tensor, Tensor]]:
    """``None`` when the membrane is the input; ``(a, b)`` (one sample) when it is ``a x + b``."""
    fn = getattr(m, "membrane", None)
    if not callable(fn):
        return None
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    try:
        b_full, one = fn(zeros), fn(ones)
        actual = fn(x)
    except Exception as err:
        raise ConversionError(
            f"{where}: its membrane is not an elementwise map of its input ({err})"
        ) from None
    if not all(isinstance(t, Tensor) and t.shape == x.shape for t in (b_full, one, actual)):
        raise ConversionError(
            f"{where}: its membrane has another shape than its input (the neuron holds a "
            "layer of its own); export the layer and a plain neuron instead"
        )
    a_full = one.double() - b_full.double()
    predicted = a_full * x.double() + b_full.double()
    tol = 1e-5 * (1.0 + float(actual.double().abs().max()))
    if not torch.allclose(predicted, actual.double(), rtol=1e-5, atol=tol):
        raise ConversionError(
            f"{where}: its membrane is not an affine function of its input (e.g. a ReLU "
            "inside); NIR Threshold nodes compare an affine map of the input"
        )
    a = _per_sample(a_full, tuple(x.shape), lead, "membrane gain", where)
    b = _per_sample(b_full.double(), tuple(x.shape), lead, "membrane offset", where)
    if bool((a == 1).all()) and bool((b == 0).all()):
        return None
    if not bool((a > 0).all()):
        raise ConversionError(f"{where}: its membrane decreases with its input; no NIR node")
    return a, b


def _neuron(tr: _Tracer, m: nn.Module, path: str, v: _Val, output: Any) -> None:
    where = describe(m, path)
    theta, gain = _neuron_params(m, where)
    x = v.tensor
    leaves = [t for t in tree_leaves(output) if isinstance(t, Tensor)]
    if not leaves:
        raise ConversionError(f"{where} returns no tensor")
    spikes = leaves[0]
    if spikes.shape != x.shape:
        raise ConversionError(
            f"{where} returns spikes of shape {tuple(spikes.shape)} for input {tuple(x.shape)}"
        )
    membrane = _membrane_map(m, x, v.lead, where)
    theta_t = (
        theta.detach()
        if isinstance(theta, Tensor)
        else torch.tensor(float(theta), dtype=torch.float64)
    )
    thr_full = firing_threshold(theta_t, x.dtype, None)
    if membrane is not None:
        a, b = membrane
        thr_per = firing_threshold(
            _per_sample(theta_t.double(), tuple(x.shape), v.lead, "threshold", where),
            x.dtype,
            (a, b),
        )
    else:
        thr_per = _per_sample(thr_full, tuple(x.shape), v.lead, "threshold", where)
    thr_per = thr_per.to(tr.dtype)
    # Check the rule on the sample: spike iff x > NIR threshold (exact for identity membranes).
    fired = x.to(tr.dtype) > thr_per
    g = torch.ones((), dtype=spikes.dtype) if gain is None else gain.to(spikes.dtype)
    expected = (fired.to(spikes.dtype) * g).to(spikes.dtype)
    wrong = expected != spikes
    if bool(wrong.any()):
        if membrane is not None:
            a, b = membrane
            v_m = a * x.double() + b
            near = (v_m - theta_t.double()).abs() <= 1e-5 * (1.0 + theta_t.double().abs())
            wrong = wrong & ~near
        if bool(wrong.any()):
            raise ConversionError(
                f"{where}: on the sample input {int(wrong.sum())} of {wrong.numel()} spikes "
                "do not follow 'spike iff membrane >= threshold'; a neuron that fires "
                "differently cannot be exported"
            )
    node = tr.add_node(
        "threshold", [v.node], v.per, {"threshold": thr_per}, base=path or "neuron", where=where
    )
    binary = True
    if gain is not None:
        per_gain = _per_sample(gain.double(), tuple(x.shape), v.lead, "spike gain", where)
        node = tr.add_node(
            "scale", [node], v.per, {"scale": per_gain}, base=f"{path}.gain", where=where
        )
        binary = False
    tr.put(spikes, _Val(spikes, node, v.lead, binary))
    for t in leaves[1:]:
        if t is x or tr.get(t) is not None:
            continue
        if membrane is None and t.shape == x.shape and torch.equal(t, x):
            tr.put(t, v)
        else:
            tr.put(t, _Val(t, None, v.lead, poison=f"a membrane/state output of {where}"))


# --- dispatch -----------------------------------------------------------------------

_DROPOUTS = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


def _leaf_handler(m: nn.Module) -> Optional[Callable]:
    kind = registry.neuron_kind(m)
    if kind is not None and kind.single_step:
        return _neuron
    if isinstance(m, nn.Linear):
        return _linear
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        return _conv
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _batchnorm
    if isinstance(m, PSPNorm):
        return _pspnorm
    if isinstance(m, nn.AvgPool2d):
        return _avgpool
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return _adaptive_avgpool
    if isinstance(m, nn.MaxPool2d):
        return _maxpool
    if isinstance(m, nn.Flatten):
        return _flatten_module
    if isinstance(m, (nn.Identity,) + _DROPOUTS):
        return _identity
    return None


def trace(net: nn.Module, x: Tensor) -> Graph:
    """Run ``net`` (eval mode, single-step layout) on ``x`` ``[B, ...]`` and record it."""
    tr = _Tracer(x.dtype)
    handles = []
    try:
        for path, module in net.named_modules():
            handles.append(
                module.register_forward_pre_hook(
                    partial(tr.pre, path), prepend=True, with_kwargs=True
                )
            )
            handles.append(module.register_forward_hook(partial(tr.post, path), with_kwargs=True))
        tr.add_input(x)
        try:
            with torch.no_grad(), tr:
                out = net(x)
        except _Abort as abort:
            raise abort.error from None
        tr.finish(out)
    finally:
        for handle in handles:
            handle.remove()
    return Graph(tr.nodes, tr.input_name, tr.output_names, x.dtype)
