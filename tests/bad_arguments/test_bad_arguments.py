"""Generated bad arguments for every public callable (issue 18).

For each callable listed in ``__all__`` of the public modules (``_catalogue.PUBLIC_MODULES``),
hypothesis substitutes one argument of a known-good call (``_catalogue.VALID``) by a bad
value: NaN, ±inf, negative numbers, 0, huge ints, bools where numbers go, truthy strings
where flags go, None, lists, arbitrary objects, classes, tensors of the wrong dtype or
shape, NaN data, modules, callables returning NaN, random floats, ints and strings. The
call must either raise a :class:`~snn_singlestep.errors.SingleStepError`, or emit a
:class:`~snn_singlestep.errors.SingleStepWarning`, or, when the value happens to be valid,
return a finite result of the documented type that can be used (a module runs on an
input) without a raw error. A raw ``TypeError``/``ValueError``/``RuntimeError``/... from
torch or Python internals fails the test, and so does a NaN output.

``python tests/bad_arguments/probe.py`` runs the whole fixed catalogue once (every
callable × argument × named bad value) for the figure in ``docs/api.md``.
"""

from __future__ import annotations

import _catalogue as cat
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CALLABLES = cat.public_callables()
NAMES = sorted(CALLABLES)


def bad_values() -> st.SearchStrategy:
    """The named catalogue (fresh objects each draw) plus random numbers and strings."""
    named = st.sampled_from(sorted(cat.BAD_VALUES)).map(lambda label: cat.BAD_VALUES[label]())
    numbers = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-3, max_value=3),
        st.sampled_from([2**31, 2**63, -(2**63), 2**70]),
    )
    return st.one_of(named, numbers, st.text(max_size=4), st.lists(st.floats(), max_size=2))


def _example(name: str) -> cat.Example:
    example = cat.valid_examples().get(name)
    if example is None:
        pytest.fail(
            f"add valid example arguments for {name} to VALID in "
            "tests/bad_arguments/_catalogue.py (a new public callable is tested only once it "
            "has one)"
        )
    return example


def test_every_public_callable_has_a_valid_example():
    missing = [name for name in NAMES if name not in cat.valid_examples()]
    assert not missing, "add valid example arguments for " + ", ".join(missing)
    stale = sorted(set(cat.valid_examples()) - set(NAMES))
    assert not stale, f"VALID has entries for names that are not public (any more): {stale}"


def test_the_public_callables_are_found():
    # a few names that must be there, from each kind of module
    for name in ("snn_singlestep.S2Cell", "snn_singlestep.collapse",
                 "snn_singlestep.export.to_onnx", "snn_singlestep.energy.energy_report",
                 "snn_singlestep.monitor.FiringRateMonitor", "snn_singlestep.models.make_neuron",
                 "snn_singlestep.snntorch.ConvertedIFNeuron",
                 "snn_singlestep.spikingjelly.add_time_axis"):
        assert name in CALLABLES
    # listed once, under its first public name; the exception classes are not listed
    assert "snn_singlestep.core.S2Cell" not in CALLABLES
    assert not any(name.endswith("Error") for name in CALLABLES)


@pytest.mark.parametrize("name", NAMES)
def test_valid_example_is_accepted(name, tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    _example(name)
    outcome = cat.run_case(name, CALLABLES[name])
    assert outcome.kind == "accepted", outcome.detail


def _takes_arguments(name: str) -> bool:
    """True unless the callable has no argument to substitute (a callable without a valid
    example is kept, so that the test fails asking for one)."""
    example = cat.valid_examples().get(name)
    return example is None or bool(cat.parameters(name, CALLABLES[name], example))


@pytest.mark.parametrize("name", [n for n in NAMES if _takes_arguments(n)])
def test_bad_argument_ends_in_our_error_or_warning(name, tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)  # a bad path such as "no" is a valid file name
    example = _example(name)
    obj = CALLABLES[name]
    params = cat.parameters(name, obj, example)

    @settings(
        max_examples=example.examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(param=st.sampled_from(params), value=bad_values())
    def check(param, value):
        torch.manual_seed(0)
        outcome = cat.run_case(name, obj, param, value)
        assert outcome.kind != "FAIL", outcome.detail

    check()
