"""Tests of :class:`snn_singlestep.S2Node` and :class:`snn_singlestep.ReducedS2` (SpikingJelly 2.0).

Oracles: the single-step equation ``spike = (x >= v_threshold)``; ``s2_grad`` / ``s2_primitive``
for the surrogate; SpikingJelly's own ``surrogate.S2NN``, whose gradient formula is the same
(its primitive differs by a ``+1e-5`` inside the log).
"""

from __future__ import annotations

import copy
import io
import math
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from spikingjelly.activation_based import base, functional, layer, neuron, surrogate
from torch import nn

from snn_singlestep import ConfigError, ReducedS2, S2Node, s2_grad, s2_primitive

ALL_DTYPES = [
    pytest.param(torch.float16, id="float16"),
    pytest.param(torch.bfloat16, id="bfloat16"),
    pytest.param(torch.float32, id="float32"),
    pytest.param(torch.float64, id="float64"),
]
STEP_MODES = [pytest.param("s", id="single-step"), pytest.param("m", id="multi-step")]


def expected_spikes(x: torch.Tensor, threshold: float = 1.0) -> torch.Tensor:
    return (x >= threshold).to(x.dtype)


def run(node: nn.Module, x_seq: torch.Tensor) -> torch.Tensor:
    """Drive ``node`` over ``x_seq`` ([T, N, *]) in its own step mode."""
    if node.step_mode == "m":
        return node(x_seq)
    return torch.stack([node(x) for x in x_seq])


def run_net(net: nn.Module, x_seq: torch.Tensor) -> torch.Tensor:
    """Drive a net of S2Nodes over ``x_seq`` ([T, N, *]) in its step mode."""
    if net[1].step_mode == "m":
        return net(x_seq)
    return torch.stack([net(x) for x in x_seq])


def _net(step_mode: str = "s") -> nn.Sequential:
    net = nn.Sequential(
        layer.Linear(4, 6), S2Node(), layer.Linear(6, 3), S2Node(v_threshold=0.5)
    )
    functional.set_step_mode(net, step_mode)
    return net


# --- S2Node: forward in both step modes ---------------------------------------------------


def test_single_step_forward_is_the_single_step_equation():
    node = S2Node(v_threshold=1.0)
    x = torch.tensor([[-1.0, 0.5, 0.999, 1.0, 1.001, 3.0]])
    assert torch.equal(node(x), expected_spikes(x))
    assert node.v == 0.0  # no membrane is kept


def test_single_step_calls_are_independent():
    node = S2Node()
    x = torch.tensor([[0.6, 0.9, 1.2]])
    fresh = S2Node()(x)
    for _ in range(3):
        node(torch.full_like(x, 0.9))  # would charge an IF neuron past threshold
    assert torch.equal(node(x), fresh)
    assert torch.equal(node(x), fresh)


def test_supported_step_modes():
    assert set(S2Node().supported_step_mode()) == {"s", "m"}


def test_multi_step_each_step_equals_single_step_output():
    x_seq = torch.randn(5, 3, 4) + 1.0
    x_seq[2, 0, 0] = 1.0  # a tie
    out_m = S2Node(step_mode="m")(x_seq)
    single = S2Node(step_mode="s")
    assert out_m.shape == x_seq.shape
    for t in range(x_seq.shape[0]):
        assert torch.equal(out_m[t], single(x_seq[t]))
    assert torch.equal(out_m, expected_spikes(x_seq))


def test_multi_step_differs_from_if_node_which_integrates():
    # Sanity of the test above: a stateful node would not satisfy it.
    x_seq = torch.full((3, 1, 2), 0.6)
    assert torch.equal(S2Node(step_mode="m")(x_seq), torch.zeros_like(x_seq))
    assert neuron.IFNode(step_mode="m")(x_seq).sum() > 0


def test_set_step_mode_switches_every_s2node_and_net_runs_in_both():
    net = _net("s")
    x_seq = torch.randn(4, 2, 4)
    with torch.no_grad():
        out_s = torch.stack([net(x) for x in x_seq])
        functional.set_step_mode(net, "m")
        assert all(m.step_mode == "m" for m in net if isinstance(m, S2Node))
        out_m = net(x_seq)
    assert torch.equal(out_m, out_s)
    functional.set_step_mode(net, "s")
    assert all(m.step_mode == "s" for m in net if isinstance(m, S2Node))


def test_invalid_step_mode_is_rejected():
    with pytest.raises(ConfigError, match="step_mode"):
        S2Node(step_mode="x")
    node = S2Node()
    with pytest.raises(ValueError, match="step_mode"):
        node.step_mode = "x"


@pytest.mark.parametrize("step_mode", STEP_MODES)
def test_reset_net_on_net_containing_s2node(step_mode):
    net = _net(step_mode)
    x_seq = torch.randn(3, 2, 4)
    with torch.no_grad():
        first = run_net(net, x_seq)
        functional.reset_net(net)
        second = run_net(net, x_seq)
    assert torch.equal(first, second)
    for m in net:
        if isinstance(m, S2Node):
            assert m.v == 0.0


def test_reset_net_clears_v_seq_and_detach_net_runs():
    node = S2Node(store_v_seq=True)
    net = nn.Sequential(layer.Linear(2, 2), node)
    net(torch.randn(3, 2))
    assert node.v_seq is not None
    functional.detach_net(net)
    functional.reset_net(net)
    assert node.v_seq is None


def test_invalidate_reset_cache_after_swapping_in_an_s2node():
    net = nn.Sequential(layer.Linear(3, 3), neuron.LIFNode())
    net(torch.randn(2, 3))
    functional.reset_net(net)  # caches the list of resettable modules
    old = net[1]
    net[1] = S2Node(store_v_seq=True)
    net(torch.randn(2, 3))
    functional.reset_net(net)  # still the cached list: the new node is not reset
    assert net[1].v_seq is not None
    functional.invalidate_reset_cache(net)
    functional.reset_net(net)
    assert net[1].v_seq is None
    assert old is not net[1]


# --- functional (explicit-state) forward ---------------------------------------------------


@pytest.mark.parametrize("step_mode", STEP_MODES)
def test_functional_forward_is_pure(step_mode):
    node = S2Node(step_mode=step_mode)
    x = torch.randn(3, 2, 4) if step_mode == "m" else torch.randn(2, 4)
    x_copy = x.clone()
    state = torch.full(x.shape[-2:], 0.7)
    states = (state,)
    memories_before = dict(node._memories)
    fn = (
        node.multi_step_functional_forward if step_mode == "m"
        else node.single_step_functional_forward
    )
    outputs, new_states = fn((x,), states)
    assert isinstance(outputs, tuple) and len(outputs) == 1
    assert torch.equal(outputs[0], expected_spikes(x))
    assert len(new_states) == 1 and torch.equal(new_states[0], torch.full(x.shape[-2:], 0.7))
    assert torch.equal(state, torch.full(x.shape[-2:], 0.7))  # the given state is not mutated
    assert torch.equal(x, x_copy)
    assert dict(node._memories) == memories_before


def test_functional_forward_ignores_the_state_value():
    node = S2Node()
    x = torch.tensor([[0.2, 0.8, 1.1]])
    for state in (0.0, torch.full_like(x, 100.0), torch.full_like(x, -100.0)):
        (spike,), _ = node.single_step_functional_forward((x,), (state,))
        assert torch.equal(spike, expected_spikes(x))


@pytest.mark.parametrize("step_mode", STEP_MODES)
def test_to_functional_forward_on_a_net_with_s2node(step_mode):
    net = nn.Sequential(
        layer.Linear(4, 5), S2Node(), layer.Linear(5, 3), neuron.LIFNode(), S2Node()
    )
    functional.set_step_mode(net, step_mode)
    x = torch.randn(3, 2, 4) if step_mode == "m" else torch.randn(2, 4)
    states = tuple(base.extract_memories(net))
    assert len(states) == 3
    f = base.to_functional_forward(net)
    with torch.no_grad():
        (out,), new_states = f((x,), states)
        # the net is not mutated: its memories are still the reset values
        assert all(isinstance(v, float) and v == 0.0 for v in base.extract_memories(net))
        ref = net(x)
    assert torch.equal(out, ref)
    assert len(new_states) == 3
    # S2Node states pass through unchanged (SpikingJelly materialises 0.0 as a zero tensor)
    for i in (0, 2):
        assert bool((torch.as_tensor(new_states[i]) == states[i]).all())
    assert torch.as_tensor(new_states[1]).abs().sum() > 0  # the LIF node did charge


def test_to_functional_forward_on_a_lone_s2node():
    node = S2Node(step_mode="m")
    f = base.to_functional_forward(node)
    x = torch.randn(2, 3, 4)
    (out,), (v,) = f((x,), (0.0,))
    assert torch.equal(out, expected_spikes(x))
    assert bool((torch.as_tensor(v) == 0.0).all())
    assert node.v == 0.0


# --- S2Node: arguments -------------------------------------------------------------------


def _grad(fn, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    fn(x).sum().backward()
    return x.grad


POINTS = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0]], dtype=torch.float64)


@pytest.mark.parametrize("v_threshold", [1.0, -0.5], ids=["theta-1", "theta-neg"])
def test_default_surrogate_is_reduced_s2(v_threshold):
    node = S2Node(v_threshold=v_threshold)
    assert isinstance(node.surrogate_function, ReducedS2)
    torch.testing.assert_close(_grad(node, POINTS), s2_grad(POINTS - v_threshold))


def test_surrogate_function_override():
    node = S2Node(surrogate_function=surrogate.Sigmoid(alpha=2.0))
    assert isinstance(node.surrogate_function, surrogate.Sigmoid)
    ref = _grad(lambda x: surrogate.Sigmoid(alpha=2.0)(x - 1.0), POINTS)
    torch.testing.assert_close(_grad(node, POINTS), ref)
    assert not torch.allclose(ref, s2_grad(POINTS - 1.0))
    assert torch.equal(node(POINTS), expected_spikes(POINTS))


def test_non_callable_surrogate_is_rejected():
    with pytest.raises(ConfigError, match="surrogate_function"):
        S2Node(surrogate_function=3)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        pytest.param({"v_threshold": math.nan}, "v_threshold", id="v_threshold-nan"),
        pytest.param({"v_threshold": math.inf}, "v_threshold", id="v_threshold-inf"),
        pytest.param({"v_threshold": "1"}, "v_threshold", id="v_threshold-str"),
        pytest.param({"v_threshold": None}, "v_threshold", id="v_threshold-none"),
        pytest.param({"v_reset": math.nan}, "v_reset", id="v_reset-nan"),
        pytest.param({"detach_reset": "no"}, "detach_reset", id="detach_reset-str"),
        pytest.param({"store_v_seq": 1}, "store_v_seq", id="store_v_seq-int"),
    ],
)
def test_invalid_node_argument_raises_config_error(kwargs, name):
    with pytest.raises(ConfigError, match=name) as info:
        S2Node(**kwargs)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("v_threshold", [2, 0, -1], ids=["int-2", "int-0", "int-neg"])
def test_integer_threshold_is_accepted_as_float(v_threshold):
    node = S2Node(v_threshold=v_threshold)
    assert isinstance(node.v_threshold, float) and node.v_threshold == float(v_threshold)
    x = torch.tensor([[-1.0, 0.0, 1.5, 2.0]])
    assert torch.equal(node(x), expected_spikes(x, v_threshold))


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"v_reset": None}, id="soft-reset"),
        pytest.param({"v_reset": 0.5}, id="v_reset-float"),
        pytest.param({"v_reset": -1}, id="v_reset-int"),
        pytest.param({"detach_reset": True}, id="detach_reset"),
    ],
)
@pytest.mark.parametrize("step_mode", STEP_MODES)
def test_v_reset_and_detach_reset_are_accepted_without_effect(kwargs, step_mode):
    x_seq = torch.randn(3, 2, 4) + 1.0
    node = S2Node(step_mode=step_mode, **kwargs)
    assert torch.equal(run(node, x_seq), expected_spikes(x_seq))
    assert torch.equal(run(node, x_seq), expected_spikes(x_seq))


def test_store_v_seq_records_membranes_in_single_step_mode():
    node = S2Node(store_v_seq=True)
    xs = [torch.randn(2, 3) for _ in range(3)]
    for x in xs:
        node(x)
    assert torch.equal(node.v_seq, torch.stack(xs))
    node.reset()
    assert node.v_seq is None


def test_store_v_seq_records_membranes_in_multi_step_mode():
    node = S2Node(store_v_seq=True, step_mode="m")
    x_seq = torch.randn(4, 2, 3)
    node(x_seq)
    assert torch.equal(node.v_seq, x_seq)
    node.reset()
    assert node.v_seq is None


def test_without_store_v_seq_nothing_is_recorded():
    node = S2Node(step_mode="m")
    node(torch.randn(2, 2, 3))
    assert node.v_seq is None


# --- ReducedS2 ---------------------------------------------------------------------------


def test_reduced_s2_spiking_is_heaviside_with_tie_firing():
    x = torch.tensor([-1.0, -1e-6, 0.0, 1e-6, 2.0])
    assert torch.equal(ReducedS2()(x), torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    ("alpha", "beta"), [(4.0, 1.0), (2.0, 0.5), (10.0, 3.0)], ids=["4-1", "2-0.5", "10-3"]
)
def test_reduced_s2_gradient_equals_s2_grad(alpha, beta):
    x = torch.linspace(-3, 3, 25, dtype=torch.float64)
    torch.testing.assert_close(_grad(ReducedS2(alpha, beta), x), s2_grad(x, alpha, beta))


@pytest.mark.parametrize(
    ("alpha", "beta"), [(4.0, 1.0), (2.0, 0.5)], ids=["4-1", "2-0.5"]
)
def test_reduced_s2_spiking_false_returns_the_primitive(alpha, beta):
    x = torch.linspace(-3, 3, 25, dtype=torch.float64)
    sg = ReducedS2(alpha, beta, spiking=False)
    assert torch.equal(sg(x), s2_primitive(x, alpha, beta))
    # and the primitive's derivative is the surrogate gradient (x = 0 included)
    torch.testing.assert_close(_grad(sg, x), s2_grad(x, alpha, beta))


def test_reduced_s2_primitive_derivative_at_zero_is_beta():
    x = torch.zeros(1, dtype=torch.float64)
    torch.testing.assert_close(_grad(ReducedS2(4.0, 1.0, spiking=False), x), s2_grad(x))


def test_reduced_s2_set_spiking_mode():
    sg = ReducedS2()
    x = torch.tensor([-0.5, 0.5])
    sg.set_spiking_mode(False)
    assert torch.equal(sg(x), s2_primitive(x))
    sg.set_spiking_mode(True)
    assert torch.equal(sg(x), torch.tensor([0.0, 1.0]))


def test_reduced_s2_gradient_equals_spikingjelly_s2nn_gradient():
    x = torch.linspace(-0.99, 3, 40, dtype=torch.float64)
    for alpha, beta in ((4.0, 1.0), (3.0, 0.7)):
        torch.testing.assert_close(
            _grad(ReducedS2(alpha, beta), x), _grad(surrogate.S2NN(alpha, beta), x)
        )


def test_reduced_s2_gradient_is_finite_far_below_zero():
    x = torch.tensor([-1.0, -1.5, -50.0, -1e4])
    g = _grad(ReducedS2(), x)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, s2_grad(x))


def test_reduced_s2_repr_shows_parameters():
    text = repr(ReducedS2(alpha=3.0, beta=0.5))
    assert "alpha=3.0" in text and "beta=0.5" in text


BAD_SURROGATE_ARGS = [
    pytest.param({"alpha": 0.0}, "alpha", id="alpha-zero"),
    pytest.param({"alpha": -1.0}, "alpha", id="alpha-negative"),
    pytest.param({"alpha": math.nan}, "alpha", id="alpha-nan"),
    pytest.param({"alpha": math.inf}, "alpha", id="alpha-inf"),
    pytest.param({"alpha": "4"}, "alpha", id="alpha-str"),
    pytest.param({"beta": 0}, "beta", id="beta-zero"),
    pytest.param({"beta": -0.5}, "beta", id="beta-negative"),
    pytest.param({"beta": math.nan}, "beta", id="beta-nan"),
    pytest.param({"beta": "1"}, "beta", id="beta-str"),
    pytest.param({"spiking": "yes"}, "spiking", id="spiking-str"),
]


@pytest.mark.parametrize(("kwargs", "name"), BAD_SURROGATE_ARGS)
def test_reduced_s2_validation(kwargs, name):
    with pytest.raises(ConfigError, match=name) as info:
        ReducedS2(**kwargs)
    assert isinstance(info.value, ValueError)


def test_reduced_s2_accepts_integers():
    sg = ReducedS2(alpha=4, beta=1)
    assert sg.alpha == 4.0 and sg.beta == 1.0


@pytest.mark.parametrize("node_cls", [neuron.LIFNode, neuron.IFNode], ids=["LIFNode", "IFNode"])
@pytest.mark.parametrize("step_mode", STEP_MODES)
def test_reduced_s2_inside_spikingjelly_nodes(node_cls, step_mode):
    x_seq = (torch.randn(4, 3, 5) * 2).requires_grad_(True)
    ours = node_cls(surrogate_function=ReducedS2(), step_mode=step_mode)
    out = run(ours, x_seq)
    out.sum().backward()
    grad = x_seq.grad.clone()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # Same forward and gradient as the node driven by SpikingJelly's own S2NN surrogate.
    x_seq.grad = None
    theirs = node_cls(surrogate_function=surrogate.S2NN(), step_mode=step_mode)
    ref = run(theirs, x_seq)
    ref.sum().backward()
    assert torch.equal(out, ref)
    torch.testing.assert_close(grad, x_seq.grad)


# --- pickling, copying, dtype --------------------------------------------------------------


def test_pickle_round_trip_of_node_and_surrogate():
    node = S2Node(v_threshold=0.5, surrogate_function=ReducedS2(alpha=3.0, beta=0.5))
    clone = pickle.loads(pickle.dumps(node))
    assert isinstance(clone.surrogate_function, ReducedS2)
    assert clone.surrogate_function.alpha == 3.0 and clone.surrogate_function.beta == 0.5
    assert clone.v_threshold == 0.5
    x = torch.randn(3, 4, dtype=torch.float64)
    assert torch.equal(clone(x), node(x))
    torch.testing.assert_close(_grad(clone, x), _grad(node, x))
    sg = pickle.loads(pickle.dumps(ReducedS2(alpha=2.0, spiking=False)))
    assert sg.spiking is False and sg.alpha == 2.0


@pytest.mark.parametrize("step_mode", STEP_MODES)
def test_torch_save_load_of_a_whole_net(step_mode):
    net = _net(step_mode)
    buf = io.BytesIO()
    torch.save(net, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert loaded[1].step_mode == step_mode
    x = torch.randn(3, 2, 4) if step_mode == "m" else torch.randn(2, 4)
    assert torch.equal(loaded(x), net(x))


def test_deepcopy_after_forward_with_autograd():
    net = _net("s")
    x = torch.randn(2, 4)
    out = net(x)  # autograd on; S2Node keeps no non-leaf tensor
    clone = copy.deepcopy(net)
    assert clone[1] is not net[1]
    assert torch.equal(clone(x), out)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("step_mode", STEP_MODES)
def test_node_keeps_dtype(dtype, step_mode):
    node = S2Node(step_mode=step_mode)
    x_seq = (torch.randn(3, 2, 4) + 1.0).to(dtype).requires_grad_(True)
    out = run(node, x_seq)
    assert out.dtype == dtype
    assert torch.equal(out, expected_spikes(x_seq.detach()))
    out.sum().backward()
    assert x_seq.grad.dtype == dtype and torch.isfinite(x_seq.grad.float()).all()


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("spiking", [True, False], ids=["spiking", "primitive"])
def test_reduced_s2_keeps_dtype(dtype, spiking):
    x = torch.linspace(-2, 2, 9).to(dtype).requires_grad_(True)
    y = ReducedS2(spiking=spiking)(x)
    assert y.dtype == dtype
    y.sum().backward()
    assert x.grad.dtype == dtype


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_s2node_store_v_seq_keeps_dtype(dtype):
    node = S2Node(store_v_seq=True)
    x = torch.randn(2, 3).to(dtype)
    node(x)
    node(x)
    assert node.v_seq.dtype == dtype and node.v_seq.shape == (2, 2, 3)


# --- SpikingJelly's own S2NN -------------------------------------------------------------


def test_spikingjelly_s2nn_is_not_ours():
    assert surrogate.S2NN is not ReducedS2
    assert surrogate.S2NN.__module__ == "spikingjelly.activation_based.surrogate"
    assert not issubclass(surrogate.S2NN, ReducedS2)
    # SpikingJelly's primitive keeps its own +1e-5 inside the log.
    x = torch.tensor([0.0])
    assert surrogate.S2NN(spiking=False)(x).item() != ReducedS2(spiking=False)(x).item()


def test_importing_snn_singlestep_leaves_s2nn_untouched():
    code = textwrap.dedent(
        """
        import torch
        from spikingjelly.activation_based import surrogate
        cls = surrogate.S2NN
        attrs = dict(vars(cls))
        module_names = dict(vars(surrogate))
        x = torch.linspace(-2, 2, 11, dtype=torch.float64, requires_grad=True)
        surrogate.S2NN()(x).sum().backward()
        grad = x.grad.clone()
        prim = surrogate.S2NN(spiking=False)(x.detach())

        import snn_singlestep

        assert surrogate.S2NN is cls
        assert dict(vars(cls)) == attrs
        changed = {k for k, v in vars(surrogate).items() if module_names.get(k, object()) is not v}
        assert changed == {"ReducedS2"}, changed
        x.grad = None
        surrogate.S2NN()(x).sum().backward()
        assert torch.equal(x.grad, grad)
        assert torch.equal(surrogate.S2NN(spiking=False)(x.detach()), prim)
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "SNN_SINGLESTEP_NO_REGISTER"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")
