"""Tests of :mod:`snn_singlestep._registration`: our names inside snnTorch and SpikingJelly.

Every test that changes the registration uses the ``restore_registration`` fixture, which
puts back the state ``import snn_singlestep`` leaves (all four names registered by us).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest
import snntorch
import snntorch as snn
import snntorch.surrogate
import torch
from spikingjelly.activation_based import neuron, surrogate
from torch import nn

import snn_singlestep
from snn_singlestep import RegistrationError, SingleStepError

# (module name, attribute, our object)
TARGETS = [
    ("snntorch", "S2Neuron", snn_singlestep.S2Neuron),
    ("snntorch.surrogate", "s2nn", snn_singlestep.s2nn),
    ("spikingjelly.activation_based.neuron", "S2Node", snn_singlestep.S2Node),
    ("spikingjelly.activation_based.surrogate", "ReducedS2", snn_singlestep.ReducedS2),
]
TARGET_IDS = [f"{m}.{n}" for m, n, _ in TARGETS]
ALL_NAMES = set(TARGET_IDS)


def _module(name: str):
    return importlib.import_module(name)


def _all_ours() -> bool:
    return all(getattr(_module(m), n, None) is obj for m, n, obj in TARGETS)


def _none_present() -> bool:
    return not any(hasattr(_module(m), n) for m, n, _ in TARGETS)


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SNN_SINGLESTEP_NO_REGISTER"}
    env.update(extra)
    return env


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=_subprocess_env(**env),
        timeout=120,
    )


class _Foreign:
    """Someone else's object under one of our names."""


@pytest.fixture
def restore_registration():
    assert _all_ours() and set(snn_singlestep.registered()) == ALL_NAMES, (
        "precondition: the import-time registration is in place"
    )
    yield
    snn_singlestep.unregister()
    for module_name, name, _ in TARGETS:  # drop anything a test left behind
        module = _module(module_name)
        if hasattr(module, name):
            delattr(module, name)
    assert set(snn_singlestep.register()) == ALL_NAMES
    assert _all_ours()


# --- the import-time registration --------------------------------------------------------


@pytest.mark.parametrize(("module_name", "name", "obj"), TARGETS, ids=TARGET_IDS)
def test_import_registers_our_objects(module_name, name, obj):
    assert getattr(_module(module_name), name) is obj


def test_registered_names_after_import():
    assert set(snn_singlestep.registered()) == ALL_NAMES


def test_framework_spellings_reach_our_classes():
    assert snntorch.S2Neuron is snn_singlestep.S2Neuron
    assert isinstance(snntorch.surrogate.s2nn(), snn_singlestep.S2Surrogate)
    assert neuron.S2Node is snn_singlestep.S2Node
    assert surrogate.ReducedS2 is snn_singlestep.ReducedS2


def test_foreign_all_lists_are_not_edited():
    for module_name, name, _ in TARGETS:
        assert name not in getattr(_module(module_name), "__all__", ())


def test_register_is_idempotent():
    assert snn_singlestep.register() == ()
    assert snn_singlestep.register() == ()
    assert _all_ours()
    assert set(snn_singlestep.registered()) == ALL_NAMES


# --- unregister / register ---------------------------------------------------------------


def test_unregister_removes_exactly_our_names(restore_registration):
    before = {m: set(vars(_module(m))) for m, _, _ in TARGETS}
    removed = snn_singlestep.unregister()
    assert set(removed) == ALL_NAMES
    assert _none_present()
    assert snn_singlestep.registered() == ()
    for module_name, name, _ in TARGETS:
        assert before[module_name] - set(vars(_module(module_name))) == {name}
    assert snn_singlestep.unregister() == ()  # nothing left to remove


def test_register_after_unregister_adds_them_back(restore_registration):
    snn_singlestep.unregister()
    added = snn_singlestep.register()
    assert set(added) == ALL_NAMES
    assert _all_ours()
    assert set(snn_singlestep.registered()) == ALL_NAMES
    assert snn_singlestep.register() == ()


def test_lookalike_with_same_module_and_qualname_counts_as_ours(restore_registration):
    # A reloaded copy of our class is a different object with the same identity.
    lookalike = type("S2Neuron", (), {})
    lookalike.__module__ = snn_singlestep.S2Neuron.__module__
    lookalike.__qualname__ = snn_singlestep.S2Neuron.__qualname__
    snntorch.S2Neuron = lookalike
    assert snn_singlestep.register() == ()
    assert snntorch.S2Neuron is lookalike  # left alone, no error


@pytest.mark.parametrize(("module_name", "name", "obj"), TARGETS, ids=TARGET_IDS)
def test_foreign_object_blocks_register_without_changing_anything(
    restore_registration, module_name, name, obj
):
    snn_singlestep.unregister()
    foreign = _Foreign()
    setattr(_module(module_name), name, foreign)
    with pytest.raises(RegistrationError, match=name) as info:
        snn_singlestep.register()
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, SingleStepError)
    assert getattr(_module(module_name), name) is foreign
    for other_module, other_name, _ in TARGETS:  # all checked before anything is set
        if other_name != name:
            assert not hasattr(_module(other_module), other_name)
    assert snn_singlestep.registered() == ()


@pytest.mark.parametrize(("module_name", "name", "obj"), TARGETS, ids=TARGET_IDS)
def test_overwrite_replaces_foreign_object_and_unregister_restores_it(
    restore_registration, module_name, name, obj
):
    snn_singlestep.unregister()
    foreign = _Foreign()
    module = _module(module_name)
    setattr(module, name, foreign)
    added = snn_singlestep.register(overwrite=True)
    assert set(added) == ALL_NAMES
    assert getattr(module, name) is obj
    assert _all_ours()
    removed = snn_singlestep.unregister()
    assert set(removed) == ALL_NAMES
    assert getattr(module, name) is foreign
    for other_module, other_name, _ in TARGETS:
        if other_name != name:
            assert not hasattr(_module(other_module), other_name)


def test_foreign_object_replacing_ours_later_blocks_register(restore_registration):
    foreign = _Foreign()
    neuron.S2Node = foreign
    with pytest.raises(RegistrationError, match="S2Node"):
        snn_singlestep.register()
    assert neuron.S2Node is foreign


def test_overwrite_of_an_object_that_replaced_ours_is_undone_by_unregister(
    restore_registration,
):
    # registered -> someone replaces our name -> we force ours back -> unregister must give
    # the name back to that someone, not delete their object.
    foreign = _Foreign()
    neuron.S2Node = foreign
    assert snn_singlestep.register(overwrite=True) == (
        "spikingjelly.activation_based.neuron.S2Node",
    )
    assert neuron.S2Node is snn_singlestep.S2Node
    snn_singlestep.unregister()
    assert neuron.S2Node is foreign
    assert not hasattr(snntorch, "S2Neuron")


def test_overwrite_when_already_ours_changes_nothing():
    assert snn_singlestep.register(overwrite=True) == ()
    assert _all_ours()


# --- ordinary framework code after import ------------------------------------------------


def test_snntorch_leaky_with_registered_s2nn_trains_a_step():
    fc = nn.Linear(4, 3)
    lif = snn.Leaky(beta=0.9, spike_grad=snntorch.surrogate.s2nn())
    x = torch.randn(5, 8, 4)
    before = fc.weight.detach().clone()
    mem = lif.init_leaky()
    spk_rec = []
    for t in range(x.shape[0]):
        spk, mem = lif(fc(x[t]), mem)
        spk_rec.append(spk)
    loss = (torch.stack(spk_rec).mean(0) - 0.5).pow(2).sum()
    loss.backward()
    assert torch.isfinite(fc.weight.grad).all() and fc.weight.grad.abs().sum() > 0
    with torch.no_grad():  # one plain SGD step (torch.optim's first step imports dynamo: slow)
        for p in fc.parameters():
            p -= 0.5 * p.grad
    assert not torch.equal(fc.weight, before)


def test_registered_s2neuron_is_usable_through_snntorch():
    net = nn.Sequential(nn.Linear(3, 2), snntorch.S2Neuron(beta=0.9, init_hidden=True))
    out = net(torch.randn(4, 3))
    assert out.shape == (4, 2)


@pytest.mark.parametrize("step_mode", ["s", "m"], ids=["single-step", "multi-step"])
def test_spikingjelly_lif_with_registered_reduced_s2_runs(step_mode):
    lif = neuron.LIFNode(surrogate_function=surrogate.ReducedS2(), step_mode=step_mode)
    x = (torch.randn(4, 2, 3) * 2).requires_grad_(True)
    out = lif(x) if step_mode == "m" else torch.stack([lif(xt) for xt in x])
    assert out.shape == x.shape
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_spikingjelly_registered_s2node_runs():
    node = neuron.S2Node(step_mode="m")
    x = torch.randn(3, 2, 4)
    assert torch.equal(node(x), (x >= 1.0).to(x.dtype))


# --- import in a fresh interpreter -------------------------------------------------------


def test_opt_out_environment_variable():
    proc = _run_python(
        """
        import snntorch, snntorch.surrogate
        from spikingjelly.activation_based import neuron, surrogate
        import snn_singlestep
        targets = [(snntorch, "S2Neuron"), (snntorch.surrogate, "s2nn"),
                   (neuron, "S2Node"), (surrogate, "ReducedS2")]
        assert not any(hasattr(m, n) for m, n in targets), "registered despite opt-out"
        assert snn_singlestep.registered() == ()
        assert snn_singlestep.S2Neuron(beta=0.9)  # the package itself still works
        assert len(snn_singlestep.register()) == 4
        assert snntorch.S2Neuron is snn_singlestep.S2Neuron
        print("ok")
        """,
        SNN_SINGLESTEP_NO_REGISTER="1",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")


def test_import_adds_exactly_the_four_names_and_warns_on_a_clash():
    proc = _run_python(
        """
        import types, warnings
        import snntorch, snntorch.surrogate
        from spikingjelly.activation_based import neuron, surrogate
        mods = [snntorch, snntorch.surrogate, neuron, surrogate]
        before = [dict(vars(m)) for m in mods]

        import snn_singlestep

        added = set()
        for m, snap in zip(mods, before):
            for k, v in vars(m).items():
                if isinstance(v, types.ModuleType):
                    continue  # submodules imported along the way
                if snap.get(k, object()) is not v:
                    added.add(f"{m.__name__}.{k}")
        assert added == set(snn_singlestep.registered()), added
        assert len(added) == 4, added

        # A clash at import time warns instead of failing the import.
        import importlib, sys
        snn_singlestep.unregister()
        snntorch.S2Neuron = "foreign"
        for name in [n for n in sys.modules if n.startswith("snn_singlestep")]:
            del sys.modules[name]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fresh = importlib.import_module("snn_singlestep")
        assert any(issubclass(w.category, fresh.SingleStepWarning) and "S2Neuron" in str(w.message)
                   for w in caught), [str(w.message) for w in caught]
        assert snntorch.S2Neuron == "foreign"
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")


def test_unregister_leaves_a_foreign_object_that_replaced_ours():
    import snntorch

    import snn_singlestep

    foreign = object()
    snntorch.S2Neuron = foreign
    try:
        removed = snn_singlestep.unregister()
        assert "snntorch.S2Neuron" not in removed
        assert snntorch.S2Neuron is foreign
    finally:
        del snntorch.S2Neuron
        snn_singlestep.register()
    assert snntorch.S2Neuron is snn_singlestep.S2Neuron
