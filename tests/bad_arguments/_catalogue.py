"""What the generated bad-argument test calls (issue 18): every public callable, a valid
example for each, and the bad values substituted into their arguments.

The callables are listed from ``__all__`` of each public module, so a new public function
or class is picked up without editing this file; one without an entry in :data:`VALID`
makes ``test_every_public_callable_has_a_valid_example`` fail with "add valid example
arguments for X". The test is ``test_bad_arguments.py`` next to this file;
``python tests/bad_arguments/probe.py`` runs every (callable, argument, bad value) case of
the fixed catalogue once and prints the counts reported in ``docs/api.md``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import math
import tempfile
import warnings
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor, nn

from snn_singlestep.errors import SingleStepError, SingleStepWarning

#: The public modules whose ``__all__`` lists the public callables (errors and app/ are not:
#: the exception classes are what the test expects, and the CLI tests cover app/).
PUBLIC_MODULES = (
    "snn_singlestep",
    "snn_singlestep.core",
    "snn_singlestep.convert",
    "snn_singlestep.export",
    "snn_singlestep.energy",
    "snn_singlestep.monitor",
    "snn_singlestep.models",
    "snn_singlestep.snntorch",
    "snn_singlestep.spikingjelly",
)


def public_callables() -> dict[str, Callable]:
    """``{"module.name": obj}`` for every callable in ``__all__`` (first public name wins).

    Modules, exception/warning classes and constants are left out; an object exported under
    several names (``snn_singlestep.S2Cell`` is ``snn_singlestep.core.S2Cell``) is listed once.
    """
    seen: set[int] = set()
    out: dict[str, Callable] = {}
    for modname in PUBLIC_MODULES:
        mod = importlib.import_module(modname)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or not callable(obj):
                continue
            if inspect.isclass(obj) and issubclass(obj, (BaseException, Warning)):
                continue
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            out[f"{modname}.{name}"] = obj
    return out


# --- small fixtures -----------------------------------------------------------------------

_FUSED_AT_START = importlib.import_module("snn_singlestep.core").get_fused_backward()

_TMP: Optional[tempfile.TemporaryDirectory] = None


def tmp_dir() -> Path:
    """A directory for files the examples write (removed at interpreter exit)."""
    global _TMP
    if _TMP is None:
        _TMP = tempfile.TemporaryDirectory(prefix="snn_ss_bad_args_")
    return Path(_TMP.name)


def _x(*shape: int) -> Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def _torch_net() -> nn.Module:
    from snn_singlestep import S2Cell

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), S2Cell(threshold=0.2), nn.Linear(5, 3))


def _noisy_net() -> nn.Module:
    from snn_singlestep import S2Cell

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), S2Cell(threshold=0.2, noise_std=0.4), nn.Linear(5, 3))


def _snntorch_net() -> nn.Module:
    import snntorch as snn

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(5, 3))


def _sj_net() -> nn.Module:
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(6, 5), neuron.LIFNode(), layer.Linear(5, 3))
    functional.set_step_mode(net, "m")
    return net


def _s2node_net() -> nn.Module:
    from snn_singlestep import S2Node

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), S2Node(v_threshold=0.2), nn.Linear(5, 3))


def _graph():
    from snn_singlestep.export import to_nir

    return to_nir(_torch_net().eval(), _x(2, 6))


class _UserNeuron(nn.Module):
    """A user's module class for the rule-registry examples."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def _rule_fn(module: nn.Module) -> nn.Module:
    return module


# --- checks of a result -------------------------------------------------------------------


def _finite(value: Any) -> bool:
    """No NaN/inf in a tensor, a float, or the parameters and buffers of a module."""
    if isinstance(value, Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, nn.Module):
        return all(_finite(t) for t in list(value.parameters()) + list(value.buffers()))
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    return True


def _run(module: nn.Module, x: Tensor) -> Any:
    """Call ``module`` on ``x`` in eval mode (no state left behind)."""
    from snn_singlestep.core import registry

    module.eval()
    registry.reset_all(module)
    with torch.no_grad():
        return module(x)


def _backward(spikes: Tensor) -> Optional[Tensor]:
    """Run the backward pass of spikes that carry a graph (the surrogate gradient)."""
    if spikes.requires_grad:
        spikes.sum().backward()
    return None


def _surrogate_grad(fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Run a spike function forward and backward on a small input; return the gradient."""
    x = torch.linspace(-2, 2, 9, requires_grad=True)
    fn(x).sum().backward()
    return x.grad


@dataclass
class Example:
    """A valid call of one public callable and how to check what it returns.

    Args:
        make: returns ``(args, kwargs)`` of a valid call, fresh each time (nets are mutated).
        returns: the documented type of the result (None: anything).
        use: exercises the result (e.g. runs a module on an input); what it returns must be
            finite too. It gets the result; None skips it.
        params: the parameter names to substitute; default: every named parameter of the
            signature (``self``, ``*args``, ``**kwargs`` excluded).
        call: what to call instead of the object itself (e.g. ``S2Spike.apply``).
        examples: hypothesis ``max_examples`` for this callable (expensive calls get fewer).
        cleanup: called after each call (e.g. to undo a registration).
        passes_nan: the tensor arguments whose values flow into the result as data, as in
            any torch op (``x``, ``current``, tensor α/β): a NaN put there may come out as
            NaN. Their values are not read back (that would cost a device sync per call);
            a NaN *number* or a NaN in data whose statistics are learned is still refused.
    """

    make: Callable[[], tuple[tuple, dict]]
    returns: Optional[Union[type, tuple[type, ...]]] = None
    use: Optional[Callable[[Any], Any]] = None
    params: Optional[tuple[str, ...]] = None
    call: Optional[Callable] = None
    examples: int = 40
    cleanup: Optional[Callable[[], None]] = None
    passes_nan: tuple[str, ...] = ()


def _module_use(shape: tuple[int, ...]) -> Callable[[nn.Module], Any]:
    return lambda m: _run(m, _x(*shape))


def _kw(**kwargs: Any) -> Callable[[], tuple[tuple, dict]]:
    """``make`` for a call with keyword arguments only (tensors and nets made fresh)."""

    def make() -> tuple[tuple, dict]:
        return (), {k: (v() if callable(v) and getattr(v, "_fresh", False) else v)
                    for k, v in kwargs.items()}

    return make


def fresh(factory: Callable[[], Any]) -> Callable[[], Any]:
    """Mark a factory whose result is built anew for every call (see :func:`_kw`)."""
    factory._fresh = True  # type: ignore[attr-defined]
    return factory


def _unregister_user_rule() -> None:
    from snn_singlestep.core import registry

    for cls in (_UserNeuron,):
        try:
            registry.unregister_rule(cls)
        except SingleStepError:
            pass


def _register_again() -> None:
    """``cleanup`` of unregister: the package registers its names on import; put them back."""
    import snn_singlestep

    snn_singlestep.register()


def _energy():
    from snn_singlestep.energy import energy_report

    return energy_report(_torch_net(), _x(2, 6))


def _collapsed_use(result: Any) -> Any:
    """Run a collapsed net (``result`` is ``(net, report)`` with ``return_report=True``)."""
    net = result[0] if isinstance(result, tuple) else result
    return _run(net, _x(2, 6))


def _collapsed_and_original():
    from snn_singlestep.convert import collapse

    original = _snntorch_net()
    return collapse(original), original


def _valid_examples() -> dict[str, Example]:
    from spikingjelly.activation_based import neuron as sj_neuron

    from snn_singlestep.convert import CalibrationEntry, ReportEntry
    from snn_singlestep.core.registry import RuleContext
    from snn_singlestep.core.surrogate import S2Spike
    from snn_singlestep.energy import LayerEnergy

    x26 = fresh(lambda: _x(2, 6))
    mod = nn.Module
    return {
        # --- top level ---------------------------------------------------------------
        "snn_singlestep.add_time_dim": Example(_kw(x=x26), Tensor, passes_nan=("x",)),
        "snn_singlestep.collapse": Example(
            _kw(net=fresh(_snntorch_net), framework="snntorch"), (nn.Module, tuple),
            _collapsed_use, examples=40,
        ),
        "snn_singlestep.CollapseReport": Example(
            _kw(frameworks=("snntorch",), mode="exact", entries=[], notes=[], input_ndim=2,
                calibration=[]),
            returns=None,
            use=str,
        ),
        "snn_singlestep.LinearNoiseSchedule": Example(
            _kw(start=0.0, end=0.4, num_steps=4), use=lambda s: [s(k) for k in range(6)]
        ),
        "snn_singlestep.list_rules": Example(_kw(framework="snntorch"), list),
        "snn_singlestep.MembraneNoise": Example(_kw(std=0.4, learnable=False, seed=0), mod),
        "snn_singlestep.MultiFieldBlock": Example(
            _kw(module=fresh(lambda: nn.Conv2d(1, 2, 3, padding=1)), window=4, stride=None,
                projection="mean", decay=0.4, threshold=0.5, learn_decay=True,
                learn_threshold=True, surrogate="s2", recurrent=True),
            mod, _module_use((2, 1, 6, 6)),
        ),
        "snn_singlestep.MultiStepNet": Example(
            _kw(net=fresh(_torch_net), T=3, encoding="rate", output="mean", step_mode="s",
                seed=0),
            mod, _module_use((2, 6)),
        ),
        "snn_singlestep.preact_resnet": Example(
            _kw(depth=8, num_classes=3, in_channels=1, width=4, norm="psp", bottleneck=False,
                threshold=1.0),
            mod, _module_use((2, 1, 8, 8)), examples=20,
        ),
        "snn_singlestep.PSPNorm": Example(
            _kw(num_features=3, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True),
            mod, _module_use((2, 3, 4)),
        ),
        "snn_singlestep.PSPNorm1d": Example(
            _kw(num_features=3, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True),
            mod, _module_use((2, 3)),
        ),
        "snn_singlestep.PSPNorm2d": Example(
            _kw(num_features=3, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True),
            mod, _module_use((2, 3, 2, 2)),
        ),
        "snn_singlestep.ReducedS2": Example(
            _kw(alpha=4.0, beta=1.0, spiking=True), mod,
        ),
        "snn_singlestep.register": Example(_kw(overwrite=False), tuple),
        "snn_singlestep.register_rule": Example(
            lambda: ((_UserNeuron, _rule_fn), dict(kind="neuron", note="", exact=True,
                                                    inherit=False, framework="user",
                                                    overwrite=True)),
            cleanup=_unregister_user_rule,
        ),
        "snn_singlestep.registered": Example(_kw(), tuple),
        "snn_singlestep.s2_grad": Example(
            _kw(x=x26, alpha=4.0, beta=1.0), Tensor, passes_nan=("x", "alpha", "beta")
        ),
        "snn_singlestep.s2_primitive": Example(
            _kw(x=x26, alpha=4.0, beta=1.0), Tensor, passes_nan=("x", "alpha", "beta")
        ),
        "snn_singlestep.s2_spike": Example(
            _kw(x=fresh(lambda: (_x(2, 6) - 0.5).requires_grad_()), alpha=4.0, beta=1.0),
            Tensor, use=_backward, passes_nan=("x", "alpha", "beta"),
        ),
        "snn_singlestep.S2Cell": Example(
            _kw(threshold=0.5, surrogate=None, learn_threshold=False, noise_std=0.0),
            mod, _module_use((2, 6)),
        ),
        "snn_singlestep.S2Neuron": Example(
            _kw(beta=0.9, threshold=0.5, init_hidden=True, learn_threshold=False, noise_std=0.0,
                reset_mechanism="subtract", graded_spikes_factor=1.0, output=False,
                inhibition=False, surrogate_disable=False),
            mod, _module_use((2, 6)),
        ),
        "snn_singlestep.s2nn": Example(_kw(alpha=4.0, beta=1.0, learnable=False), mod,
                                       _surrogate_grad),
        "snn_singlestep.S2Node": Example(
            _kw(v_threshold=0.5, v_reset=0.0, surrogate_function=None, detach_reset=False,
                step_mode="s", store_v_seq=False, noise_std=0.0),
            mod, _module_use((2, 6)),
        ),
        "snn_singlestep.S2Surrogate": Example(
            _kw(alpha=4.0, beta=1.0, spiking=True, learnable=False), mod,
            _surrogate_grad,
        ),
        "snn_singlestep.set_noise_std": Example(
            _kw(net=fresh(_torch_net), std=0.3, learnable=False, seed=0), list
        ),
        "snn_singlestep.squeeze_time": Example(
            _kw(x=fresh(lambda: _x(1, 2, 6)), sample_ndim=2, name="input"), Tensor,
            passes_nan=("x",),
        ),
        "snn_singlestep.step_noise_schedules": Example(_kw(net=fresh(_noisy_net))),
        "snn_singlestep.to_multistep": Example(
            _kw(net=fresh(_noisy_net), T=3, encoding="rate", mapping="matched",
                noise_std=None, framework="auto", step_mode="auto", output="mean", seed=0,
                inplace=False),
            mod, _module_use((2, 6)),
        ),
        "snn_singlestep.unregister": Example(_kw(), tuple, cleanup=_register_again),
        "snn_singlestep.unregister_rule": Example(
            _registered_user_rule,
            cleanup=_unregister_user_rule,
        ),
        # --- core --------------------------------------------------------------------
        "snn_singlestep.core.S2Spike": Example(
            lambda: (((_x(2, 6) - 0.5).requires_grad_(), 4.0, 1.0), {}), Tensor,
            use=_backward, call=S2Spike.apply, params=("x", "alpha", "beta"),
            passes_nan=("x", "alpha", "beta"),
        ),
        "snn_singlestep.core.get_fused_backward": Example(_kw(), str),
        "snn_singlestep.core.heaviside": Example(_kw(x=x26), Tensor, passes_nan=("x",)),
        "snn_singlestep.core.s2_neuron_step": Example(
            _kw(current=x26, threshold=0.5, noise_std=0.1,
                generator=fresh(lambda: torch.Generator().manual_seed(0))),
            tuple, passes_nan=("current", "noise_std", "threshold"),
        ),
        "snn_singlestep.core.set_fused_backward": Example(
            _kw(mode="off"), str, cleanup=_restore_fused
        ),
        # --- convert -----------------------------------------------------------------
        "snn_singlestep.convert.CalibrationEntry": Example(
            _kw(path="1", target_rate=0.2, rate_before=0.1, rate_after=0.2,
                threshold_before=1.0, threshold_after=0.8),
            CalibrationEntry, str,
        ),
        "snn_singlestep.convert.CollapseOptions": Example(_kw(mode="exact", inplace=False)),
        "snn_singlestep.convert.MembraneReadout": Example(
            _kw(neuron=fresh(lambda: _collapsed_and_original()[0][1])), mod, _module_use((2, 5)),
        ),
        "snn_singlestep.convert.ReportEntry": Example(
            _kw(path="1", source="Leaky", action="converted", target="CollapsedLeaky",
                detail=""),
            ReportEntry, str,
        ),
        "snn_singlestep.convert.Rule": Example(
            lambda: ((_UserNeuron, _rule_fn), dict(kind="neuron", framework="user", note="",
                                                    exact=True, inherit=False)),
        ),
        "snn_singlestep.convert.RuleContext": Example(
            _kw(path="1", mode="exact", step_mode="s", surrogate=None), RuleContext
        ),
        "snn_singlestep.convert.SingleStepInput": Example(
            _kw(sample_ndim=2, add_time=False),
            use=lambda hook: hook(nn.Identity(), (_x(1, 2, 6),)),
        ),
        "snn_singlestep.convert.calibrate": Example(
            lambda: (_collapsed_and_original(), dict(data=[_x(8, 6)], T=4, granularity="layer",
                                                     channel_dim=1, run_original=None)),
            list, examples=20,
        ),
        "snn_singlestep.convert.get_rule": Example(
            _kw(cls=sj_neuron.LIFNode, frameworks=("spikingjelly",))
        ),
        # --- export ------------------------------------------------------------------
        "snn_singlestep.export.NIRNet": Example(
            lambda: ((_graph(),), {}), mod, _module_use((2, 6)), examples=15
        ),
        "snn_singlestep.export.from_nir": Example(
            lambda: ((_graph(),), {}), mod, _module_use((2, 6)), examples=15
        ),
        "snn_singlestep.export.to_nir": Example(
            lambda: ((_torch_net().eval(), _x(2, 6)), dict(path=tmp_dir() / "net.nir")),
            examples=15,
        ),
        "snn_singlestep.export.to_onnx": Example(
            lambda: ((_torch_net().eval(), _x(2, 6), tmp_dir() / "net.onnx"),
                     dict(opset_version=18)),
            Path, examples=10,
        ),
        "snn_singlestep.export.write_nir": Example(
            lambda: ((_graph(), tmp_dir() / "graph.nir"), {}), Path, examples=15
        ),
        # --- energy, monitor ---------------------------------------------------------
        "snn_singlestep.energy.EnergyReport": Example(
            _kw(layers=[], batch_size=2, steps=1, table={"mac": 4.6, "ac": 0.9}),
            use=lambda r: (str(r), r.to_dict()),
        ),
        "snn_singlestep.energy.LayerEnergy": Example(
            _kw(name="0", kind="linear", macs=30, synops=0, firing_rate=None, param_bytes=120,
                energy_pj=1.0),
            LayerEnergy,
        ),
        "snn_singlestep.energy.energy_report": Example(
            _kw(model=fresh(_torch_net), example_input=x26, steps=None,
                table={"mac": 4.6, "ac": 0.9}, forward=None),
            use=lambda r: (str(r), r.energy_per_sample_pj),
        ),
        "snn_singlestep.energy.compare": Example(
            lambda: (({"a": _energy(), "b": _energy()},), {}), str
        ),
        "snn_singlestep.monitor.FiringRateMonitor": Example(
            _kw(model=fresh(_torch_net)),
            use=lambda mon: _monitor_rates(mon),
        ),
        # --- models ------------------------------------------------------------------
        "snn_singlestep.models.SingleStepCNN": Example(
            _kw(in_shape=(1, 8, 8), num_classes=3, channels=(2, 3), framework="torch",
                threshold=1.0),
            mod, _module_use((2, 1, 8, 8)),
        ),
        "snn_singlestep.models.SingleStepMLP": Example(
            _kw(in_features=6, num_classes=3, hidden=(5,), framework="torch", threshold=1.0,
                in_shape=None),
            mod, _module_use((2, 6)),
        ),
        "snn_singlestep.models.make_neuron": Example(
            _kw(framework="torch", threshold=1.0), mod, _module_use((2, 6))
        ),
        "snn_singlestep.models.swap_neurons": Example(
            _kw(net=fresh(_torch_net), framework="snntorch"), mod,
        ),
        # --- snntorch ----------------------------------------------------------------
        "snn_singlestep.snntorch.ConvertedIFNeuron": Example(
            _kw(threshold=0.5, spike_grad=None, noise_std=0.4, mapping="matched",
                init_hidden=True, output=False, graded_spikes_factor=1.0,
                learn_threshold=False, learn_graded_spikes_factor=False),
            mod, _module_use((2, 6)),
        ),
        "snn_singlestep.snntorch.collapse": Example(
            _kw(net=fresh(_snntorch_net), mode="exact", return_report=False), (nn.Module, tuple),
            _collapsed_use, params=("net", "mode", "return_report", "inplace"),
        ),
        "snn_singlestep.snntorch.to_multistep": Example(
            _kw(net=fresh(_noisy_net), T=3, mapping="matched"), mod, _module_use((2, 6)),
            params=("net", "T", "mapping", "encoding", "output"),
        ),
        # --- spikingjelly ------------------------------------------------------------
        "snn_singlestep.spikingjelly.ConvertedIFNode": Example(
            _kw(threshold=0.5, noise_std=0.4, mapping="matched", surrogate_function=None,
                step_mode="s", store_v_seq=False),
            mod, _module_use((2, 6)),
        ),
        "snn_singlestep.spikingjelly.PSPNorm1d": Example(
            _kw(num_features=3, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                step_mode="m"),
            mod, _module_use((2, 2, 3)),
        ),
        "snn_singlestep.spikingjelly.PSPNorm2d": Example(
            _kw(num_features=3, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                step_mode="s"),
            mod, _module_use((2, 3, 2, 2)),
        ),
        "snn_singlestep.spikingjelly.add_time_axis": Example(
            _kw(module=fresh(lambda: nn.Linear(6, 3)), ctx=None), mod,
        ),
        "snn_singlestep.spikingjelly.collapse": Example(
            _kw(net=fresh(_sj_net), mode="exact"), mod, _module_use((2, 6)),
            params=("net", "mode", "step_mode", "readout"),
        ),
        "snn_singlestep.spikingjelly.reset_each_call": Example(
            _kw(module=fresh(_sj_net), ctx=None), mod,
        ),
        "snn_singlestep.spikingjelly.to_multistep": Example(
            _kw(net=fresh(_s2node_net), T=3, mapping="plain"), mod, _module_use((2, 6)),
            params=("net", "T", "mapping", "step_mode"),
        ),
    }


def _registered_user_rule() -> tuple[tuple, dict]:
    """``make`` of unregister_rule: a rule to remove."""
    from snn_singlestep.core.registry import keep_rule, register_rule

    register_rule(_UserNeuron, keep_rule, kind="keep", framework="user")
    return (_UserNeuron,), {}


def _restore_fused() -> None:
    """``cleanup`` of set_fused_backward: the mode this process started with."""
    from snn_singlestep.core import set_fused_backward

    set_fused_backward(_FUSED_AT_START)


def _monitor_rates(mon) -> dict:
    with mon:
        mon.model(_x(2, 6))
    return mon.rates()


VALID: dict[str, Example] = {}


def valid_examples() -> dict[str, Example]:
    if not VALID:
        VALID.update(_valid_examples())
    return VALID


# --- bad values ---------------------------------------------------------------------------


class _Opaque:
    """An object of no type any argument takes."""

    def __repr__(self) -> str:
        return "<object>"


def _nan_fn(*args: Any, **kwargs: Any) -> float:
    return float("nan")


#: Named bad values; factories so that tensors and modules are fresh for each call.
BAD_VALUES: dict[str, Callable[[], Any]] = {
    "nan": lambda: float("nan"),
    "inf": lambda: float("inf"),
    "-inf": lambda: -float("inf"),
    "-1.0": lambda: -1.0,
    "0.0": lambda: 0.0,
    "-1": lambda: -1,
    "0": lambda: 0,
    "2**70": lambda: 2**70,
    "True": lambda: True,
    "False": lambda: False,
    "'no'": lambda: "no",
    "''": lambda: "",
    "None": lambda: None,
    "[1.0]": lambda: [1.0],
    "object()": lambda: _Opaque(),
    "tensor(nan)": lambda: torch.tensor(float("nan")),
    "int tensor": lambda: torch.tensor([1, 2]),
    "bool tensor": lambda: torch.tensor([True]),
    "complex tensor": lambda: torch.ones(2, dtype=torch.complex64),
    "tensor[7, 5]": lambda: torch.ones(7, 5),
    "empty tensor": lambda: torch.ones(0),
    "NaN data [4, 6]": lambda: torch.full((4, 6), float("nan")),
    "nn.Identity()": lambda: nn.Identity(),
    "NaN callable": lambda: _nan_fn,
    "a class (int)": lambda: int,
}


def parameters(name: str, obj: Callable, example: Example) -> tuple[str, ...]:
    """The names of the arguments to substitute for ``name``."""
    if example.params is not None:
        return example.params
    target = obj.__init__ if inspect.isclass(obj) and not is_dataclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        sig = inspect.signature(obj)
    return tuple(
        p.name for p in sig.parameters.values()
        if p.name != "self" and not p.name.startswith("_")
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


def _bind(obj: Callable, example: Example, args: tuple, kwargs: dict) -> dict:
    """The example's arguments as a ``{name: value}`` mapping."""
    fn = example.call or obj
    if example.params is not None and example.call is not None:
        return dict(zip(example.params, args), **kwargs)
    sig = inspect.signature(fn)
    bound = sig.bind_partial(*args, **kwargs).arguments
    out = {}
    for key, value in bound.items():
        if sig.parameters[key].kind == inspect.Parameter.VAR_KEYWORD:
            out.update(value)  # ``**options``: the options themselves
        else:
            out[key] = value
    return out


# --- one case -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """How one call ended: ``"error"``, ``"warning"``, ``"accepted"`` or ``"FAIL"``."""

    kind: str
    detail: str = ""


RAW = (TypeError, ValueError, RuntimeError, AttributeError, IndexError, KeyError,
       ZeroDivisionError, OverflowError, AssertionError, NotImplementedError)


_UNCHANGED = object()


def run_case(name: str, obj: Callable, param: Optional[str] = None,
             value: Any = _UNCHANGED) -> Outcome:
    """Call ``name`` with its valid example, ``param`` replaced by ``value``; classify.

    Without ``param`` the valid example itself is called.
    """
    example = valid_examples()[name]
    args, kwargs = example.make()
    arguments = _bind(obj, example, args, kwargs)
    if param is not None:
        arguments[param] = value
    nan_in = (param in example.passes_nan and isinstance(value, Tensor)
              and value.is_floating_point() and not bool(torch.isfinite(value).all()))
    fn = example.call or obj
    what = f"{name}({param}={value!r:.60})" if param is not None else f"{name}(<valid example>)"
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            if example.call is not None and example.params is not None:
                result = fn(*[arguments[p] for p in example.params if p in arguments])
            else:
                result = _call(fn, arguments)
            if not any(issubclass(w.category, SingleStepWarning) for w in caught):
                return _check_result(what, example, result, nan_in)
        except SingleStepError as err:
            return Outcome("error", f"{type(err).__name__}: {err}")
        except Exception as err:
            return Outcome("FAIL", f"{what} raised a raw {type(err).__name__}: {err}")
        finally:
            if example.cleanup is not None:
                example.cleanup()
    ours = [w for w in caught if issubclass(w.category, SingleStepWarning)]
    return Outcome("warning", str(ours[0].message))


def _call(fn: Callable, arguments: dict) -> Any:
    """Call ``fn`` with ``arguments`` as keywords, positional-only ones by position."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn(**arguments)
    args = []
    kwargs = dict(arguments)
    for p in sig.parameters.values():
        if p.kind == p.POSITIONAL_ONLY and p.name in kwargs:
            args.append(kwargs.pop(p.name))
    return fn(*args, **kwargs)


def _check_result(what: str, example: Example, result: Any, nan_in: bool = False) -> Outcome:
    if example.returns is not None and not isinstance(result, example.returns):
        return Outcome("FAIL", f"{what} returned {type(result).__name__}, documented "
                               f"{example.returns!r}")
    if not nan_in and not _finite(result):
        return Outcome("FAIL", f"{what} returned non-finite values: {result!r:.200}")
    if example.use is not None:
        try:
            used = example.use(result)
        except SingleStepError as err:
            return Outcome("error", f"(when used) {type(err).__name__}: {err}")
        except Exception as err:
            return Outcome("FAIL", f"{what} was accepted, then using it raised a raw "
                                   f"{type(err).__name__}: {err}")
        if not nan_in and not _finite(used):
            return Outcome("FAIL", f"{what} was accepted, then using it gave non-finite "
                                   f"values: {used!r:.200}")
    return Outcome("accepted")
