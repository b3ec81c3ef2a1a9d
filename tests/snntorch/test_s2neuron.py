"""Tests of :class:`snn_singlestep.S2Neuron`, the single-step drop-in for ``snntorch.Leaky``.

The oracle for the forward pass is the equation of the single-step neuron,
``mem = input`` and ``spk = (input >= threshold)``, and, away from ties, the first step of a
freshly built ``snntorch.Leaky`` (which starts from a zero membrane, so its first step is the
same equation with ``>`` instead of ``>=``).
"""

from __future__ import annotations

import copy
import inspect
import io
import math

import pytest
import snntorch
import snntorch as snn
import snntorch.functional as SF
import snntorch.surrogate
import snntorch.utils
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import snn_singlestep
from snn_singlestep import ConfigError, S2Neuron, add_time_dim, s2_grad

FLOAT_DTYPES = [
    pytest.param(torch.float16, id="float16"),
    pytest.param(torch.bfloat16, id="bfloat16"),
    pytest.param(torch.float32, id="float32"),
    pytest.param(torch.float64, id="float64"),
]


def expected_spikes(x: torch.Tensor, threshold: float = 1.0) -> torch.Tensor:
    """The single-step equation: spike iff input >= threshold (ties fire)."""
    return (x >= threshold).to(x.dtype)


def leaky_is_sound(neuron: nn.Module) -> bool:
    """A registered snnTorch instance is usable by ``Leaky.reset_hidden`` (has its ``mem``)."""
    return not isinstance(neuron, snn.Leaky) or isinstance(
        getattr(neuron, "mem", None), torch.Tensor
    )


# --- signature and construction -------------------------------------------------------


def test_signature_matches_leaky_names_and_order():
    ours = inspect.signature(S2Neuron.__init__).parameters
    theirs = list(inspect.signature(snn.Leaky.__init__).parameters)
    # Leaky's parameters, same names, same order; our additions (noise_std) only after
    # them and keyword-only, so every positional call of Leaky means the same here.
    assert list(ours)[: len(theirs)] == theirs
    extras = list(ours)[len(theirs):]
    assert extras == ["noise_std"]
    assert all(ours[name].kind is inspect.Parameter.KEYWORD_ONLY for name in extras)


def test_defaults_match_leaky_except_beta():
    ours = inspect.signature(S2Neuron.__init__).parameters
    theirs = inspect.signature(snn.Leaky.__init__).parameters
    for name, param in theirs.items():
        if name in ("self", "beta"):
            continue
        assert ours[name].default == param.default, name
    # Leaky requires beta; S2Neuron ignores it, so it may default.
    assert theirs["beta"].default is inspect.Parameter.empty
    assert ours["beta"].default == 1.0


LEAKY_POSITIONAL_ARGS = [
    pytest.param(
        (0.9, 1.0, None, False, False, False, False, False, "subtract", False, False, 1.0,
         False, True),
        id="defaults",
    ),
    pytest.param(
        (0.5, 0.7, None, False, True, False, False, True, "zero", False, True, 2.0, True,
         False),
        id="init_hidden-output-learn_threshold-graded-zero-reset",
    ),
    pytest.param(
        (0.2, 1.5, None, True, False, False, False, False, "none", False, False, 0.5, False,
         True),
        id="surrogate_disable-none-reset",
    ),
    pytest.param(
        (torch.tensor([0.1, 0.9, 0.5]), torch.tensor([0.5, 1.0, 1.5]), None, False, False,
         False, False, False, "subtract", False, False, 1.0, False, True),
        id="per-neuron-tensors",
    ),
]


@pytest.mark.parametrize("args", LEAKY_POSITIONAL_ARGS)
def test_accepts_every_leaky_argument_in_the_same_position(args):
    leaky = snn.Leaky(*args)
    ours = S2Neuron(*args)
    for attr in ("beta", "threshold", "graded_spikes_factor", "reset_mechanism_val"):
        # our float thresholds are kept exact in float64; Leaky's are float32
        torch.testing.assert_close(
            getattr(ours, attr), getattr(leaky, attr), msg=attr, check_dtype=False
        )
        assert isinstance(getattr(ours, attr), nn.Parameter) == isinstance(
            getattr(leaky, attr), nn.Parameter
        ), attr
    for attr in ("surrogate_disable", "init_hidden", "inhibition", "output", "reset_mechanism",
                 "reset_delay", "state_quant"):
        assert getattr(ours, attr) == getattr(leaky, attr), attr


def test_keyword_construction_like_leaky():
    n = S2Neuron(beta=0.95, threshold=0.5, reset_mechanism="zero", reset_delay=False)
    assert float(n.threshold) == 0.5
    assert n.reset_mechanism == "zero"
    assert isinstance(n, snn.Leaky) and isinstance(n, snn.SpikingNeuron)


def test_learn_beta_raises_config_error_naming_it():
    with pytest.raises(ConfigError, match="learn_beta") as info:
        S2Neuron(beta=0.9, learn_beta=True)
    assert isinstance(info.value, ValueError)


BAD_ARGUMENTS = [
    # (kwargs, parameter the message must name, how the message must show the bad value)
    pytest.param({"threshold": math.nan}, "threshold", "nan", id="threshold-nan"),
    pytest.param({"threshold": math.inf}, "threshold", "inf", id="threshold-inf"),
    pytest.param({"threshold": -math.inf}, "threshold", "-inf", id="threshold-neg-inf"),
    pytest.param({"threshold": "1.0"}, "threshold", "'1.0'", id="threshold-str"),
    pytest.param({"threshold": True}, "threshold", "True", id="threshold-bool"),
    pytest.param({"threshold": torch.tensor([1.0, math.nan])}, "threshold", "nan",
                 id="threshold-tensor-nan"),
    pytest.param({"threshold": torch.tensor([1, 2])}, "threshold", "int64",
                 id="threshold-int-tensor"),
    pytest.param({"reset_mechanism": "hard"}, "reset_mechanism", "'hard'",
                 id="reset_mechanism-hard"),
    pytest.param({"reset_mechanism": None}, "reset_mechanism", "None",
                 id="reset_mechanism-none-obj"),
    pytest.param({"spike_grad": 42}, "spike_grad", "42", id="spike_grad-int"),
    pytest.param({"spike_grad": "atan"}, "spike_grad", "'atan'", id="spike_grad-str"),
    pytest.param({"learn_beta": True}, "learn_beta", "True", id="learn_beta"),
    pytest.param({"beta": math.nan}, "beta", "nan", id="beta-nan"),
    pytest.param({"graded_spikes_factor": "x"}, "graded_spikes_factor", "'x'",
                 id="graded-str"),
    pytest.param({"init_hidden": "yes"}, "init_hidden", "'yes'", id="init_hidden-str"),
    pytest.param({"output": 1}, "output", "1", id="output-int"),
    pytest.param({"state_quant": 3}, "state_quant", "3", id="state_quant-int"),
]


@pytest.mark.parametrize(("kwargs", "name", "shown"), BAD_ARGUMENTS)
def test_invalid_argument_raises_config_error_naming_parameter(kwargs, name, shown):
    with pytest.raises(ConfigError, match=name) as info:
        S2Neuron(**kwargs)
    assert isinstance(info.value, ValueError)
    assert shown in str(info.value)


@pytest.mark.parametrize(("kwargs", "name", "shown"), BAD_ARGUMENTS)
def test_failed_constructor_leaves_no_half_built_neuron(kwargs, name, shown):
    before = list(snn.SpikingNeuron.instances)
    with pytest.raises(ConfigError):
        S2Neuron(**kwargs)
    after = snn.SpikingNeuron.instances
    assert len(after) == len(before)
    assert all(a is b for a, b in zip(after, before))
    assert all(leaky_is_sound(n) for n in after)
    # The global reset that snnTorch runs over every Leaky instance still works.
    net = nn.Sequential(
        nn.Linear(3, 3), S2Neuron(init_hidden=True), snn.Leaky(0.9, init_hidden=True)
    )
    net(torch.ones(2, 3))
    snntorch.utils.reset(net)
    assert torch.equal(net[2].mem, torch.zeros(2, 3))


# --- statelessness ----------------------------------------------------------------------


@pytest.mark.parametrize("init_hidden", [False, True], ids=["explicit", "init_hidden"])
def test_same_input_twice_gives_same_output(init_hidden):
    n = S2Neuron(beta=0.9, init_hidden=init_hidden, output=True)
    x = torch.tensor([[0.6, 0.9, 1.2], [0.3, 1.0, 2.0]])
    first = n(x)
    second = n(x)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert torch.equal(first[0], expected_spikes(x))


@pytest.mark.parametrize("init_hidden", [False, True], ids=["explicit", "init_hidden"])
def test_output_independent_of_previous_input(init_hidden):
    x_prev = torch.full((2, 4), 0.9)  # would push a leaky membrane over threshold
    x = torch.tensor([[0.2, 0.5, 0.95, 1.0], [-1.0, 0.0, 0.99, 3.0]])
    fresh = S2Neuron(beta=0.9, init_hidden=init_hidden, output=True)(x)
    warm = S2Neuron(beta=0.9, init_hidden=init_hidden, output=True)
    for _ in range(3):
        warm(x_prev)
    after = warm(x)
    assert torch.equal(after[0], fresh[0])
    assert torch.equal(after[1], x)
    # A real Leaky carries membrane here, so the check above is meaningful.
    leaky = snn.Leaky(beta=0.9, init_hidden=init_hidden, output=True)
    for _ in range(3):
        leaky(x_prev)
    assert not torch.equal(leaky(x)[0], fresh[0])


@given(
    st.lists(
        st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=3, max_size=3),
        min_size=1,
        max_size=6,
    ),
    st.floats(-2, 2, allow_nan=False, width=32),
)
def test_every_call_is_one_step_from_zero(steps, threshold):
    n = S2Neuron(beta=0.5, threshold=threshold)
    for step in steps:
        x = torch.tensor(step)
        spk, mem = n(x)
        assert torch.equal(spk, expected_spikes(x, threshold))
        assert torch.equal(mem, x)


def test_matches_fresh_leaky_first_step_away_from_ties():
    x = torch.tensor([[-2.0, 0.3, 0.99, 1.01, 4.0]])
    for beta in (0.0, 0.5, 0.99):
        spk, mem = S2Neuron(beta, 1.0)(x)
        leaky_spk, leaky_mem = snn.Leaky(beta, 1.0)(x)
        assert torch.equal(spk, leaky_spk)
        assert torch.equal(mem, leaky_mem)


def test_tie_fires_unlike_leaky():
    x = torch.tensor([1.0])
    assert S2Neuron()(x)[0].item() == 1.0
    assert snn.Leaky(beta=0.9)(x)[0].item() == 0.0  # snnTorch fires only above threshold


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"beta": 0.0}, id="beta-0"),
        pytest.param({"beta": 0.99}, id="beta-0.99"),
        pytest.param({"beta": torch.tensor([0.1, 0.5, 0.9, 0.3])}, id="beta-tensor"),
        pytest.param({"reset_mechanism": "zero"}, id="reset-zero"),
        pytest.param({"reset_mechanism": "none"}, id="reset-none"),
        pytest.param({"reset_delay": False}, id="no-reset-delay"),
        pytest.param({"beta": 0.3, "reset_mechanism": "none", "reset_delay": False},
                     id="all-three"),
    ],
)
def test_beta_reset_mechanism_reset_delay_have_no_effect(kwargs):
    seq = torch.tensor(
        [[[0.8, 1.0, 1.4, -0.5]], [[0.8, 0.8, 0.2, 2.0]], [[0.9, 0.1, 1.0, 0.99]]]
    )
    baseline = S2Neuron()
    varied = S2Neuron(**kwargs)
    for x in seq:
        b_spk, b_mem = baseline(x)
        v_spk, v_mem = varied(x)
        assert torch.equal(v_spk, b_spk)
        assert torch.equal(v_mem, b_mem)
        assert torch.equal(v_spk, expected_spikes(x))


def test_tutorial_style_mem_loop_is_accepted_and_ignored():
    lif = S2Neuron(beta=0.9)
    mem = lif.init_leaky()
    cur = torch.tensor([[[0.6, 0.6]], [[0.6, 0.6]], [[0.6, 1.2]], [[1.0, -1.0]]])
    spk_rec, mem_rec = [], []
    for step in range(cur.shape[0]):
        spk, mem = lif(cur[step], mem)
        spk_rec.append(spk)
        mem_rec.append(mem)
    assert torch.equal(torch.stack(spk_rec), expected_spikes(cur))
    assert torch.equal(torch.stack(mem_rec), cur)


def test_passed_mem_does_not_leak_into_output():
    lif = S2Neuron(beta=0.9)
    x = torch.tensor([[0.5, 1.5]])
    huge = torch.full_like(x, 100.0)
    spk, mem = lif(x, huge)
    assert torch.equal(spk, torch.tensor([[0.0, 1.0]]))
    assert torch.equal(mem, x)
    # A mem of another shape (e.g. the zeros(0) from init_leaky) is fine too.
    spk2, _ = lif(x, torch.zeros(7))
    assert torch.equal(spk2, spk)


# --- return conventions -----------------------------------------------------------------


def test_init_hidden_in_sequential_returns_spikes_only():
    net = nn.Sequential(
        nn.Linear(4, 5), S2Neuron(beta=0.9, init_hidden=True),
        nn.Linear(5, 3), S2Neuron(beta=0.9, init_hidden=True),
    )
    out = net(torch.randn(6, 4))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (6, 3)
    assert set(out.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("init_hidden", [False, True], ids=["explicit", "init_hidden"])
def test_output_true_returns_spk_and_mem_equal_to_input(init_hidden):
    n = S2Neuron(init_hidden=init_hidden, output=True)
    x = torch.tensor([[0.2, 1.0, 1.7]])
    out = n(x)
    assert isinstance(out, tuple) and len(out) == 2
    spk, mem = out
    assert torch.equal(spk, expected_spikes(x))
    assert torch.equal(mem, x)


def test_init_hidden_with_mem_argument_raises_type_error_like_leaky():
    x = torch.ones(2, 3)
    mem = torch.zeros(2, 3)
    with pytest.raises(TypeError, match="init_hidden") as ours:
        S2Neuron(init_hidden=True)(x, mem)
    with pytest.raises(TypeError, match="init_hidden") as theirs:
        snn.Leaky(beta=0.9, init_hidden=True)(x, mem)
    assert str(ours.value) == str(theirs.value)


# --- surrogate gradients ----------------------------------------------------------------


def _input_grad(neuron: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    spk, _ = neuron(x)
    spk.sum().backward()
    return x.grad


GRAD_POINTS = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0]], dtype=torch.float64)


@pytest.mark.parametrize("threshold", [1.0, 0.25], ids=["theta-1", "theta-0.25"])
def test_default_spike_grad_is_the_s2_surrogate(threshold):
    grad = _input_grad(S2Neuron(threshold=threshold), GRAD_POINTS)
    torch.testing.assert_close(grad, s2_grad(GRAD_POINTS - threshold))
    assert isinstance(S2Neuron().spike_grad, snn_singlestep.S2Surrogate)


def test_custom_s2nn_parameters_reach_the_gradient():
    grad = _input_grad(S2Neuron(spike_grad=snn_singlestep.s2nn(alpha=2.0, beta=0.5)), GRAD_POINTS)
    torch.testing.assert_close(grad, s2_grad(GRAD_POINTS - 1.0, 2.0, 0.5))


def test_snntorch_atan_spike_grad_overrides():
    grad = _input_grad(S2Neuron(spike_grad=snntorch.surrogate.atan()), GRAD_POINTS)
    # Oracle: the first step of a fresh Leaky with the same surrogate.
    leaky_grad = _input_grad(snn.Leaky(0.9, spike_grad=snntorch.surrogate.atan()), GRAD_POINTS)
    torch.testing.assert_close(grad, leaky_grad)
    assert not torch.allclose(grad, s2_grad(GRAD_POINTS - 1.0))


def test_learn_threshold_makes_a_parameter_that_gets_a_gradient():
    n = S2Neuron(threshold=0.8, learn_threshold=True)
    assert isinstance(n.threshold, nn.Parameter)
    assert any(p is n.threshold for p in n.parameters())
    x = torch.tensor([[0.1, 0.8, 1.3]])
    spk, _ = n(x)
    spk.sum().backward()
    expected = -s2_grad(x.double() - 0.8).sum()  # the threshold is an exact float64
    torch.testing.assert_close(n.threshold.grad, expected)
    assert n.threshold.grad.item() != 0.0


def test_threshold_without_learning_is_a_buffer():
    n = S2Neuron(threshold=0.8)
    assert not isinstance(n.threshold, nn.Parameter)
    assert "threshold" in dict(n.named_buffers())


def test_graded_spikes_factor_scales_spikes():
    x = torch.tensor([[0.5, 1.0, 2.0]])
    spk, _ = S2Neuron(graded_spikes_factor=2.5)(x)
    assert torch.equal(spk, 2.5 * expected_spikes(x))


def test_learnable_graded_spikes_factor_gets_gradient():
    n = S2Neuron(graded_spikes_factor=2.0, learn_graded_spikes_factor=True)
    assert isinstance(n.graded_spikes_factor, nn.Parameter)
    x = torch.tensor([[0.5, 1.0, 2.0, 3.0]])
    spk, _ = n(x)
    spk.sum().backward()
    assert n.graded_spikes_factor.grad.item() == pytest.approx(3.0)  # d(sum g*s)/dg = #spikes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_surrogate_disable_still_fires_at_threshold(dtype):
    n = S2Neuron(threshold=1.0, surrogate_disable=True)
    x = torch.tensor([[0.5, 1.0, 1.5]], dtype=dtype)
    spk, mem = n(x)
    assert torch.equal(spk, torch.tensor([[0.0, 1.0, 1.0]], dtype=dtype))
    assert spk.dtype == dtype and torch.equal(mem, x)


@pytest.mark.filterwarnings("ignore:Inhibition is an unstable feature")
def test_inhibition_fires_at_most_one_neuron_per_sample():
    n = S2Neuron(threshold=1.0, inhibition=True)
    x = torch.tensor(
        [
            [1.5, 2.0, 1.2, 0.1],  # three above threshold: only the largest fires
            [0.1, 0.2, 0.3, 0.4],  # none above threshold: nothing fires
            [3.0, -1.0, 1.0, 2.9],
        ]
    )
    spk, _ = n(x)
    assert torch.equal(spk, torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0] * 4, [1.0, 0.0, 0.0, 0.0]]))
    rand = torch.randn(16, 10) * 3
    spk, _ = n(rand)
    assert (spk.sum(dim=1) <= 1).all()


# --- dtype ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="s2"),
        pytest.param({"spike_grad": snntorch.surrogate.atan()}, id="atan"),
        pytest.param({"graded_spikes_factor": 0.5}, id="graded"),
        pytest.param({"threshold": torch.tensor([0.5, 1.0, 1.5])}, id="per-neuron-threshold"),
    ],
)
def test_spikes_and_mem_keep_the_input_dtype(dtype, kwargs):
    n = S2Neuron(**kwargs)
    x = torch.tensor([[0.2, 1.0, 2.0], [1.6, 0.7, 1.1]], dtype=dtype, requires_grad=True)
    spk, mem = n(x)
    assert spk.dtype == dtype and mem.dtype == dtype
    spk.sum().backward()
    assert x.grad.dtype == dtype
    assert torch.isfinite(x.grad.float()).all()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtype_kept_with_init_hidden_and_surrogate_disable(dtype):
    x = torch.tensor([[0.2, 1.0, 2.0]], dtype=dtype)
    assert S2Neuron(init_hidden=True)(x).dtype == dtype
    assert S2Neuron(surrogate_disable=True)(x)[0].dtype == dtype


# --- state_dict, reset, pickling --------------------------------------------------------


def test_loads_a_leaky_state_dict_strictly():
    leaky = snn.Leaky(beta=0.8, threshold=0.6)
    ours = S2Neuron()
    result = ours.load_state_dict(leaky.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert float(ours.threshold) == pytest.approx(0.6)
    x = torch.tensor([[0.5, 0.6, 0.7]])
    assert torch.equal(ours(x)[0], expected_spikes(x, 0.6))


def test_loads_a_learnable_leaky_state_dict_strictly():
    leaky = snn.Leaky(beta=0.8, threshold=0.6, learn_beta=True, learn_threshold=True)
    ours = S2Neuron(learn_threshold=True)
    ours.load_state_dict(leaky.state_dict(), strict=True)
    assert isinstance(ours.threshold, nn.Parameter)
    assert ours.threshold.item() == pytest.approx(0.6)


def test_leaky_net_state_dict_loads_into_s2_net_and_back():
    leaky_net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True))
    s2_net = nn.Sequential(nn.Linear(4, 3), S2Neuron(beta=0.9, init_hidden=True))
    s2_net.load_state_dict(leaky_net.state_dict(), strict=True)
    torch.testing.assert_close(s2_net[0].weight, leaky_net[0].weight)
    leaky_net.load_state_dict(s2_net.state_dict(), strict=True)


def test_membrane_is_not_in_state_dict():
    n = S2Neuron(init_hidden=True)
    n(torch.ones(2, 3))
    assert "mem" not in n.state_dict()


class _Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.s2 = S2Neuron(beta=0.9, init_hidden=True)
        self.leaky = snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x):
        return self.leaky(self.s2(self.fc(x)))


class _Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = _Inner()
        self.head = S2Neuron(init_hidden=True)

    def forward(self, x):
        return self.head(self.inner(x))


def test_reset_on_mixed_net_clears_leaky_and_keeps_s2_output():
    inner = _Inner()
    x = torch.randn(4, 3)
    with torch.no_grad():
        s2_before = inner.s2(inner.fc(x))
        inner(x)
        inner(x)
    assert inner.leaky.mem.abs().sum() > 0
    snntorch.utils.reset(inner)
    assert torch.equal(inner.leaky.mem, torch.zeros(4, 3))
    with torch.no_grad():
        assert torch.equal(inner.s2(inner.fc(x)), s2_before)


def test_reset_on_nested_net_runs_and_a_direct_s2_child_triggers_leaky_reset():
    outer = _Outer()
    x = torch.randn(4, 3)
    with torch.no_grad():
        first = outer(x)
        outer(x)
    assert outer.inner.leaky.mem.abs().sum() > 0
    # snnTorch only inspects direct children; S2Neuron is a Leaky, so its presence makes
    # reset() clear every Leaky, including the nested one.
    snntorch.utils.reset(outer)
    assert torch.equal(outer.inner.leaky.mem, torch.zeros(4, 3))
    with torch.no_grad():
        assert torch.equal(outer(x), first)


def test_reset_on_sequential_of_nested_modules_does_not_fail():
    net = nn.Sequential(nn.Linear(3, 3), nn.Sequential(S2Neuron(init_hidden=True), nn.ReLU()))
    x = torch.randn(2, 3)
    out = net(x)
    snntorch.utils.reset(net)
    snntorch.utils.reset(net[1])
    assert torch.equal(net(x), out)


def _model() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(5, 8),
        S2Neuron(beta=0.9, init_hidden=True, learn_threshold=True),
        nn.Linear(8, 3),
        S2Neuron(spike_grad=snn_singlestep.s2nn(alpha=3.0), init_hidden=True, output=True),
    )


def _outputs_and_grads(model: nn.Module, x: torch.Tensor):
    model.zero_grad()
    spk, mem = model(x)
    (spk.sum() + mem.sum()).backward()
    return spk.detach(), mem.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("after_forward", [False, True], ids=["fresh", "after-forward"])
def test_torch_save_load_whole_model_gives_identical_outputs(after_forward):
    model = _model()
    x = torch.randn(4, 5)
    if after_forward:
        model(x)  # leaves a graph behind in a stateful neuron; ours keeps nothing
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert type(loaded[1]) is S2Neuron
    ref = _outputs_and_grads(model, x)
    got = _outputs_and_grads(loaded, x)
    for a, b in zip(ref[:2], got[:2]):
        assert torch.equal(a, b)
    for a, b in zip(ref[2], got[2]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("after_forward", [False, True], ids=["fresh", "after-forward"])
def test_deepcopy_gives_identical_outputs(after_forward):
    model = _model()
    x = torch.randn(4, 5)
    if after_forward:
        model(x)  # with autograd on: a Leaky would now hold a non-leaf mem
    clone = copy.deepcopy(model)
    assert clone[1].threshold is not model[1].threshold
    ref = _outputs_and_grads(model, x)
    got = _outputs_and_grads(clone, x)
    for a, b in zip(ref[:2], got[:2]):
        assert torch.equal(a, b)
    for a, b in zip(ref[2], got[2]):
        assert torch.equal(a, b)


# --- snntorch.functional ----------------------------------------------------------------


def _net() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(6, 10), S2Neuron(init_hidden=True), nn.Linear(10, 4), S2Neuron(init_hidden=True)
    )


@pytest.mark.parametrize(
    "loss_fn",
    [
        pytest.param(SF.ce_rate_loss(), id="ce_rate_loss"),
        pytest.param(SF.ce_count_loss(), id="ce_count_loss"),
        pytest.param(SF.mse_count_loss(correct_rate=1.0, incorrect_rate=0.0),
                     id="mse_count_loss"),
    ],
)
def test_snntorch_losses_work_through_add_time_dim(loss_fn):
    net = _net()
    x = torch.randn(8, 6)
    y = torch.randint(0, 4, (8,))
    spk = net(x)
    spk_t = add_time_dim(spk)
    assert spk_t.shape == (1, 8, 4)
    loss = loss_fn(spk_t, y)
    assert loss.numel() == 1 and torch.isfinite(loss).all()
    loss.sum().backward()
    for p in net.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert net[0].weight.grad.abs().sum() > 0


def test_ce_losses_at_t1_equal_plain_cross_entropy_on_spikes():
    spk = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    y = torch.tensor([0, 2])
    ref = nn.functional.cross_entropy(spk, y)
    torch.testing.assert_close(SF.ce_rate_loss()(add_time_dim(spk), y).squeeze(), ref)
    torch.testing.assert_close(SF.ce_count_loss()(add_time_dim(spk), y), ref)


def test_mse_count_loss_correct_rate_below_one_has_zero_target_at_t1():
    # Documented pitfall (add_time_dim docstring): int(0.8 * T) == 0 when T == 1.
    spk = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1])
    loss = SF.mse_count_loss(correct_rate=0.8)(add_time_dim(spk), y)
    torch.testing.assert_close(loss, (spk**2).mean())
    loss_one = SF.mse_count_loss(correct_rate=1.0)(add_time_dim(spk), y)
    torch.testing.assert_close(loss_one, ((spk - nn.functional.one_hot(y, 2)) ** 2).mean())


def test_accuracy_rate_works_through_add_time_dim():
    net = _net()
    x = torch.randn(8, 6)
    y = torch.randint(0, 4, (8,))
    with torch.no_grad():
        spk = net(x)
    acc = SF.accuracy_rate(add_time_dim(spk), y)
    expected = (spk.max(1).indices == y).float().mean().item()
    assert float(acc) == pytest.approx(expected)
    assert float(SF.accuracy_rate(add_time_dim(torch.eye(3)), torch.arange(3))) == 1.0


def test_add_time_dim_shape_and_view():
    x = torch.randn(5, 3)
    y = add_time_dim(x)
    assert y.shape == (1, 5, 3)
    assert torch.equal(y[0], x)


def test_tiny_training_loop_lowers_the_loss():
    torch.manual_seed(0)
    n, d = 64, 8
    x = torch.randn(n, d)
    w = torch.randn(d)
    y = (x @ w > 0).long()
    net = nn.Sequential(
        nn.Linear(d, 32), S2Neuron(init_hidden=True), nn.Linear(32, 2),
        S2Neuron(init_hidden=True, output=True),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = SF.ce_rate_loss()

    def evaluate():
        with torch.no_grad():
            spk, mem = net(x)
            return loss_fn(add_time_dim(mem), y).item()

    start = evaluate()
    for _ in range(40):
        opt.zero_grad()
        spk, mem = net(x)
        loss = loss_fn(add_time_dim(mem), y)  # membrane readout of the last layer
        loss.backward()
        opt.step()
        snntorch.utils.reset(net)
    end = evaluate()
    assert end < 0.3 * start  # about 0.7 -> 0.07 or lower for seeds 0-4
    with torch.no_grad():
        _, mem = net(x)
    assert float(SF.accuracy_rate(add_time_dim(mem), y)) > 0.85


def test_tiny_training_loop_with_spike_loss_lowers_the_loss():
    torch.manual_seed(1)
    n, d = 64, 8
    x = torch.randn(n, d)
    w = torch.randn(d)
    y = (x @ w > 0).long()
    net = nn.Sequential(
        nn.Linear(d, 32), S2Neuron(init_hidden=True), nn.Linear(32, 2), S2Neuron(init_hidden=True)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = SF.ce_count_loss()
    with torch.no_grad():
        start = loss_fn(add_time_dim(net(x)), y).item()
    for _ in range(40):
        opt.zero_grad()
        loss = loss_fn(add_time_dim(net(x)), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = loss_fn(add_time_dim(net(x)), y).item()
    assert end < 0.75 * start  # ln 2 -> about 0.35 for seeds 0-4
