r"""T=1 parity: the S² neurons against snnTorch's and SpikingJelly's own neurons, and
against each other.

* Below threshold (:math:`x = v - \theta < 0`) the S² gradient is the sigmoid surrogate
  a multi-step neuron sees at its first step: it must equal the autograd gradient of
  ``snntorch.Leaky`` with ``surrogate.sigmoid(slope=α)`` and of SpikingJelly's
  ``IFNode`` with ``surrogate.Sigmoid(alpha=α)``, each run for one step from a zero
  membrane. snnTorch's ``Sigmoid`` backward is
  ``slope·exp(-slope·x)/(exp(-slope·x)+1)²`` = :math:`\alpha\sigma'(\alpha x)`
  (``snntorch/surrogate.py``); SpikingJelly's is ``α·σ(αx)·(1-σ(αx))``.
* Tie rule: ours spike at :math:`v = \theta` (as SpikingJelly); snnTorch's sigmoid
  surrogate fires only for :math:`v > \theta`.
* ``S2Neuron`` (snnTorch glue), ``S2Node`` (SpikingJelly glue), the core ``S2Cell`` and
  the bare ``s2_spike`` give bit-identical spikes and input gradients, in float32 and
  float64, ties included.
"""

from __future__ import annotations

import numpy as np
import pytest
import snntorch
import torch
from hypothesis import given
from hypothesis import strategies as st
from spikingjelly.activation_based import functional, neuron, surrogate

from snn_singlestep import S2Cell, S2Neuron, S2Node, S2Surrogate, s2_grad, s2_spike
from snn_singlestep.spikingjelly import ReducedS2

DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])

# θ > 0: from a zero membrane snnTorch's first-step reset signal H(0 - θ) is then 0.
# width=32 keeps θ exact in float32 (snnTorch stores its threshold as a float32 tensor).
thetas = st.floats(0.0625, 4.0, width=32)
alphas = st.floats(0.5, 20.0)
betas = st.floats(0.1, 8.0)


def _below_threshold(dtype: torch.dtype, alpha: float, n: int = 12):
    # float32: keep α|x| ≤ 40, since snnTorch's exp(-slope·x)² overflows to inf/inf = NaN
    # beyond ≈ 44 (a quirk of theirs, not a property of the surrogate).
    lo = -40.0 / alpha if dtype == torch.float32 else -8.0
    return st.lists(st.floats(lo, -1e-3), min_size=1, max_size=n)


def _input_grad(fn, v: torch.Tensor, upstream: torch.Tensor):
    v = v.detach().clone().requires_grad_(True)
    out = fn(v)
    spikes = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(spikes, v, grad_outputs=upstream.to(spikes.dtype))
    return spikes.detach(), grad


def _tolerances(dtype):
    return dict(rtol=1e-10, atol=1e-300) if dtype == torch.float64 else dict(rtol=2e-5, atol=1e-7)


# snnTorch's Sigmoid returns float32 spikes whatever the input dtype, so its backward
# receives a float32 upstream gradient and computes ``grad_output * slope`` in float32
# before promoting: with float64 input its gradient is only float32-accurate.
SNNTORCH_TOL = dict(rtol=2e-6, atol=1e-12)


@DTYPES
@given(theta=thetas, alpha=alphas, beta=betas, leak=st.floats(0.0, 1.0), data=st.data())
def test_sigmoid_branch_equals_snntorch_leaky_first_step(dtype, theta, alpha, beta, leak, data):
    x = data.draw(_below_threshold(dtype, alpha))
    v = torch.tensor(x, dtype=dtype) + theta
    x_actual = v - theta  # what both sides feed to their surrogate
    assert bool((x_actual < 0).all())
    upstream = torch.rand(v.shape, dtype=dtype) + 0.5
    lif = snntorch.Leaky(
        beta=leak, threshold=theta, spike_grad=snntorch.surrogate.sigmoid(slope=alpha)
    )
    spk_ref, grad_ref = _input_grad(lif, v, upstream)  # one step from a zero membrane
    spk, grad = _input_grad(lambda t: s2_spike(t - theta, alpha, beta), v, upstream)
    assert not spk_ref.any() and not spk.any()
    assert grad_ref.dtype == dtype
    tol = SNNTORCH_TOL if dtype == torch.float64 else _tolerances(dtype)
    torch.testing.assert_close(grad, grad_ref, **tol)
    want = upstream * s2_grad(x_actual, alpha, beta)
    torch.testing.assert_close(grad, want, **_tolerances(dtype))


@DTYPES
@given(theta=thetas, alpha=alphas, beta=betas, data=st.data())
def test_sigmoid_branch_equals_spikingjelly_ifnode_single_step(dtype, theta, alpha, beta, data):
    node = neuron.IFNode(v_threshold=theta, surrogate_function=surrogate.Sigmoid(alpha=alpha))
    assert node.step_mode == "s"
    for _ in range(2):  # two runs: reset_net must give the second one a zero membrane again
        functional.reset_net(node)
        x = data.draw(_below_threshold(dtype, alpha))
        v = torch.tensor(x, dtype=dtype) + theta
        upstream = torch.rand(v.shape, dtype=dtype) + 0.5
        spk_ref, grad_ref = _input_grad(node, v, upstream)
        spk, grad = _input_grad(lambda t: s2_spike(t - theta, alpha, beta), v, upstream)
        assert torch.equal(spk, spk_ref)
        assert not spk.any()
        torch.testing.assert_close(grad, grad_ref, **_tolerances(dtype))
    functional.reset_net(node)


@DTYPES
@given(theta=thetas, beta=betas)
def test_tie_rule_against_the_frameworks(dtype, theta, beta):
    alpha = 4 * beta  # g' continuous at 0: all three give the same gradient at the tie
    v = torch.full((3,), theta, dtype=dtype)
    upstream = torch.ones(3, dtype=dtype)
    lif = snntorch.Leaky(
        beta=0.5, threshold=theta, spike_grad=snntorch.surrogate.sigmoid(slope=alpha)
    )
    node = neuron.IFNode(v_threshold=theta, surrogate_function=surrogate.Sigmoid(alpha=alpha))
    spk_snntorch, g_snntorch = _input_grad(lif, v, upstream)
    spk_sj, g_sj = _input_grad(node, v, upstream)
    spk, g = _input_grad(lambda t: s2_spike(t - theta, alpha, beta), v, upstream)
    assert bool((spk == 1).all())  # ours: H(0) = 1
    assert bool((spk_sj == 1).all())  # SpikingJelly: fires at equality too
    assert not spk_snntorch.any()  # snnTorch's sigmoid: fires only above threshold
    torch.testing.assert_close(g, g_sj, **_tolerances(dtype))
    torch.testing.assert_close(g, g_snntorch, **SNNTORCH_TOL)
    torch.testing.assert_close(g, torch.full_like(g, beta), **_tolerances(dtype))


# --- our four front ends agree bit for bit -----------------------------------------------


def _our_neurons(theta: float, alpha: float, beta: float):
    s2node_m = S2Node(v_threshold=theta, surrogate_function=ReducedS2(alpha, beta), step_mode="m")
    return {
        "s2_spike": lambda v: s2_spike(v - theta, alpha, beta),
        "S2Cell": S2Cell(threshold=theta, surrogate=S2Surrogate(alpha, beta)),
        "S2Neuron": S2Neuron(threshold=theta, spike_grad=S2Surrogate(alpha, beta)),
        "S2Neuron_hidden": S2Neuron(
            threshold=theta, spike_grad=S2Surrogate(alpha, beta), init_hidden=True
        ),
        "S2Node_s": S2Node(v_threshold=theta, surrogate_function=ReducedS2(alpha, beta)),
        "S2Node_m": lambda v: s2node_m(v.unsqueeze(0))[0],
    }


def _inputs_with_ties(theta: float, dtype: torch.dtype, data) -> torch.Tensor:
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    th = np_dtype(theta)
    near = [np.nextafter(th, np_dtype(-np.inf)), th, np.nextafter(th, np_dtype(np.inf))]
    rest = data.draw(st.lists(st.floats(-6.0, 6.0, width=32), min_size=1, max_size=12))
    return torch.tensor(np.array(near + [th, th] + rest, dtype=np_dtype))


def _check_identical(theta, alpha, beta, v):
    upstream = torch.linspace(0.5, 2.0, v.numel(), dtype=v.dtype)
    results = {
        name: _input_grad(fn, v, upstream) for name, fn in _our_neurons(theta, alpha, beta).items()
    }
    spk0, grad0 = results["s2_spike"]
    assert spk0.dtype == v.dtype
    # the tie rule, spelled out: v ≥ θ spikes
    theta_v = torch.tensor(theta, dtype=v.dtype)
    assert torch.equal(spk0, (v >= theta_v).to(v.dtype))
    # at a tie the gradient is the tail's g'(0) = β, whatever α (not the sigmoid's α/4)
    tie = v == theta_v
    assert bool(tie.any())
    torch.testing.assert_close(grad0[tie], upstream[tie] * beta)
    for name, (spk, grad) in results.items():
        assert spk.dtype == v.dtype and grad.dtype == v.dtype, name
        assert torch.equal(spk, spk0), name
        assert torch.equal(grad, grad0), name


@DTYPES
@given(theta=st.floats(-3.0, 3.0, width=32), alpha=alphas, beta=betas, data=st.data())
def test_our_neurons_identical_spikes_and_gradients(dtype, theta, alpha, beta, data):
    _check_identical(theta, alpha, beta, _inputs_with_ties(theta, dtype, data))


@given(theta=st.floats(-3.0, 3.0), alpha=alphas, beta=betas, data=st.data())
def test_our_neurons_identical_in_float32_for_any_threshold(theta, alpha, beta, data):
    # θ need not be a float32 number here: every front end rounds it to the input's
    # dtype before subtracting.
    _check_identical(theta, alpha, beta, _inputs_with_ties(theta, torch.float32, data))


def test_our_neurons_identical_in_float64_for_threshold_not_exact_in_float32():
    theta = 0.1
    v = torch.tensor([0.1, 0.1 + 1e-12, 0.1 - 1e-12, 2.0, -1.0], dtype=torch.float64)
    _check_identical(theta, 4.0, 1.0, v)
