r"""Property tests of the S² surrogate against independent computations.

Each property compares the package's closed forms (:mod:`snn_singlestep.core.surrogate`)
with something computed another way, so that a wrong formula fails:

* the documented :math:`g, g'` written as scalar ``math`` code
  (:mod:`snn_singlestep.core.reference`) and float64 central finite differences;
* the multi-step integrate-and-fire neuron that ``docs/theory.md`` reduces to one step,
  simulated with :math:`K` sub-steps (reading (a): time-averaged sigmoid surrogate;
  reading (b): first-spike time), plus a BPTT of that neuron through torch autograd;
* ``torch.autograd.gradcheck`` / ``gradgradcheck`` and autograd of the primitive.

This file must not import snnTorch or SpikingJelly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

from snn_singlestep.core import reference as ref
from snn_singlestep.core.surrogate import S2Surrogate, s2_grad, s2_primitive, s2_spike

F64 = torch.float64

alphas = st.floats(0.25, 32.0)
betas = st.floats(0.1, 8.0)
# x = v - theta; wide enough to reach both far tails, with the tie x == 0 included.
xs = st.one_of(st.just(0.0), st.floats(-40.0, 60.0))
x_lists = st.lists(xs, min_size=1, max_size=16)


def _away_from_zero(margin: float, lo: float = -20.0, hi: float = 50.0):
    """Floats in [lo, -margin] ∪ [margin, hi]."""
    return st.one_of(st.floats(lo, -margin), st.floats(margin, hi))


# --- closed forms against the documented formula ----------------------------------------


@given(x=x_lists, alpha=alphas, beta=betas)
def test_s2_grad_matches_documented_formula(x, alpha, beta):
    got = s2_grad(torch.tensor(x, dtype=F64), alpha, beta)
    want = torch.tensor([ref.s2_grad_ref(v, alpha, beta) for v in x], dtype=F64)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-300)


@given(x=x_lists, alpha=alphas, beta=betas)
def test_s2_primitive_matches_documented_formula(x, alpha, beta):
    got = s2_primitive(torch.tensor(x, dtype=F64), alpha, beta)
    want = torch.tensor([ref.s2_primitive_ref(v, alpha, beta) for v in x], dtype=F64)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-300)


@given(x=st.lists(_away_from_zero(1e-3), min_size=1, max_size=16), alpha=alphas, beta=betas)
def test_grad_is_central_difference_of_primitive(x, alpha, beta):
    # |x| > 1e-3 >> h, so x ± h never straddles the kink at 0. Truncation error
    # h²/6·max|g'''| ≤ 1e-12·32³/48 and rounding eps·|g|/h stay far below the tolerance.
    h = 1e-6
    xt = torch.tensor(x, dtype=F64)
    fd_torch = (s2_primitive(xt + h, alpha, beta) - s2_primitive(xt - h, alpha, beta)) / (2 * h)
    fd_ref = torch.tensor(
        [
            (ref.s2_primitive_ref(v + h, alpha, beta) - ref.s2_primitive_ref(v - h, alpha, beta))
            / (2 * h)
            for v in x
        ],
        dtype=F64,
    )
    grad = s2_grad(xt, alpha, beta)
    torch.testing.assert_close(grad, fd_torch, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad, fd_ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@given(x=x_lists, alpha=alphas, beta=betas, data=st.data())
def test_spike_forward_is_heaviside_and_backward_is_s2_grad(dtype, x, alpha, beta, data):
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    upstream = torch.tensor(
        data.draw(st.lists(st.floats(-3, 3), min_size=len(x), max_size=len(x))), dtype=dtype
    )
    for fn in (lambda t: s2_spike(t, alpha, beta), S2Surrogate(alpha, beta)):
        spikes = fn(xt)
        assert spikes.dtype == dtype
        assert torch.equal(spikes, (xt.detach() >= 0).to(dtype))  # tie rule: H(0) = 1
        (grad,) = torch.autograd.grad(spikes, xt, grad_outputs=upstream)
        torch.testing.assert_close(grad, upstream * s2_grad(xt.detach(), alpha, beta))


@given(alpha=st.floats(0.25, 64.0), beta=betas, eps=st.sampled_from([1e-4, 1e-6, 1e-9]))
def test_primitive_is_continuous_at_zero_for_all_alpha_beta(alpha, beta, eps):
    zero = torch.zeros(1, dtype=F64)
    assert s2_primitive(zero, alpha, beta).item() == 0.5  # β·ln 1 + 1/2
    assert ref.sigmoid_ref(0.0) == 0.5  # the sigmoid branch's value at 0⁻
    left = s2_primitive(-eps * torch.ones(1, dtype=F64), alpha, beta).item()
    right = s2_primitive(eps * torch.ones(1, dtype=F64), alpha, beta).item()
    # |g(±ε) - g(0)| ≤ ε·sup|g'| on each side: α/4 on the left, β on the right.
    assert 0.0 <= 0.5 - left <= alpha / 4 * eps * (1 + 1e-9) + 1e-15
    assert 0.0 <= right - 0.5 <= beta * eps * (1 + 1e-9) + 1e-15


@given(beta=betas, alpha=st.one_of(st.none(), st.floats(0.25, 64.0)))
def test_derivative_continuous_at_zero_iff_alpha_is_four_beta(beta, alpha):
    if alpha is None:
        alpha = 4.0 * beta  # exact in floating point
    eps = 1e-7
    left = s2_grad(torch.tensor([-eps], dtype=F64), alpha, beta).item()
    right = s2_grad(torch.tensor([eps], dtype=F64), alpha, beta).item()
    at_zero = s2_grad(torch.tensor([0.0], dtype=F64), alpha, beta).item()
    # One-sided limits: α σ'(-αε) = α/4 - α³ε²/16 + …, β/(1+ε) = β - βε + …
    assert math.isclose(left, alpha / 4, rel_tol=1e-9)
    assert math.isclose(right, beta, rel_tol=2 * eps)
    assert at_zero == beta  # g'(0) belongs to the tail (x ≥ 0)
    jump = abs(right - left)
    assert math.isclose(jump, abs(alpha / 4 - beta), abs_tol=4 * eps * max(alpha, beta))
    if alpha == 4 * beta:
        assert jump <= 4 * eps * beta
    else:
        assert jump > 0.5 * abs(alpha / 4 - beta) > 0


# --- reading (a): time-averaged sigmoid surrogate of a K-sub-step IF neuron -------------
#
# θ = 1 throughout (docs/theory.md §2); β enters the readings as a gain: the package's tail
# β/(1+x) is compared with β times the simulated quantity, for β (and α) over a range.

ks = st.sampled_from([1, 3, 16, 100, 1024, 16384])


def _g(x: float, alpha: float, beta: float) -> float:
    """The package's g'(x) (``s2_grad``) at one point, float64."""
    return s2_grad(torch.tensor([x], dtype=F64), alpha, beta).item()


def _gap_bound(x: float, alpha: float) -> float:
    """0 ≤ 1/(1+x) - G∞(x) ≤ (e^{-αx} + e^{-α})/(1+x) for x > 0 (θ = 1)."""
    return (math.exp(-alpha * x) + math.exp(-alpha)) / (1 + x)


@given(x=st.floats(-0.9, 10.0), alpha=alphas, beta=betas, k=ks)
def test_time_average_converges_to_closed_form_limit_as_k_grows(x, alpha, beta, k):
    limit = ref.if_time_averaged_limit(x, alpha)
    g = _g(x, alpha, beta)
    for kk in (k, 4 * k):
        sim = ref.if_time_averaged_surrogate(x, alpha, kk)
        # Riemann-sum bound: total variation of the unimodal integrand (≤ α/2) over K.
        assert abs(sim - limit) <= alpha / (2 * kk) + 1e-12
        if x > 0:
            # the package's tail is β × the simulated average, up to the Riemann error
            # (shrinks with K) and the sharpness gap (shrinks with α)
            bound = beta * (alpha / (2 * kk) + _gap_bound(x, alpha))
            assert abs(g - beta * sim) <= bound + 1e-12
    if x < 0:
        # K = 1: the single sub-step is the whole step (v_1 = u), so the "average" is the
        # multi-step sigmoid surrogate at its only step: S²'s branch below threshold, any β.
        assert math.isclose(g, ref.if_time_averaged_surrogate(x, alpha, 1), rel_tol=1e-12)


@given(x=st.floats(0.01, 20.0), alpha=st.floats(1.0, 200.0), s2_alpha=alphas, beta=betas)
def test_time_average_limit_tends_to_s2_tail_as_alpha_grows(x, alpha, s2_alpha, beta):
    tail = _g(x, s2_alpha, beta)  # θ = 1; the tail does not depend on S²'s own α
    gap = tail - beta * ref.if_time_averaged_limit(x, alpha)
    # β/u - β G∞ = β [σ(-αx) + σ(-α)]/u ∈ [0, β (e^{-αx} + e^{-α})/u], and shrinks with α.
    assert 0.0 <= gap <= beta * _gap_bound(x, alpha) + 1e-15
    assert tail - beta * ref.if_time_averaged_limit(x, 2 * alpha) <= gap + 1e-15


@given(x=st.floats(0.05, 10.0), alpha=st.floats(8.0, 64.0), beta=betas,
       k=st.sampled_from([2048, 65536]))
def test_simulated_time_average_approaches_s2_tail(x, alpha, beta, k):
    # The whole chain at once: β × the simulated multi-step quantity vs the S² tail
    # β/(1+x); the bound shrinks as K and α grow, and so must the error.
    tail = _g(x, alpha, beta)
    for a, kk in ((alpha, k), (2 * alpha, 4 * k)):
        sim = ref.if_time_averaged_surrogate(x, a, kk)
        bound = beta * (a / (2 * kk) + _gap_bound(x, a))
        assert abs(beta * sim - tail) <= bound + 1e-12


@given(x=st.floats(-0.95, -0.01), alpha=st.floats(1.0, 200.0), beta=betas)
def test_time_average_vanishes_below_threshold_where_s2_keeps_the_sigmoid(x, alpha, beta):
    # Where reading (a) fails: below threshold G∞ ≤ σ(αx)/u → 0 as α grows; S² keeps
    # α σ'(αx) instead (the multi-step surrogate seen at its single step), whatever β.
    g_inf = ref.if_time_averaged_limit(x, alpha)
    assert 0.0 <= g_inf <= ref.sigmoid_ref(alpha * x) / (1 + x) + 1e-300
    s2 = _g(x, alpha, beta)
    assert math.isclose(s2, alpha * ref.sigmoid_grad_ref(alpha * x), rel_tol=1e-12)
    assert math.isclose(s2, ref.if_time_averaged_surrogate(x, alpha, 1), rel_tol=1e-12)
    assert s2 >= g_inf * (1 - 1e-12)  # S² never gives less than the vanishing average


@given(beta=betas)
def test_time_average_golden_values_of_the_design_notes(beta):
    got = [round(ref.if_time_averaged_limit(u - 1.0, 4.0), 3) for u in (2, 3, 4, 8)]
    assert got == [0.482, 0.327, 0.246, 0.123]
    assert round(ref.if_time_averaged_surrogate(1.0, 4.0, 1 << 16), 3) == 0.482
    # the package side of the same tables: S² tail β/u at u = 2, 3, 4, 8 (Table 1's last
    # row times β), within β (e^{-αx} + e^{-α})/u of β G∞ …
    u = torch.tensor([2.0, 3.0, 4.0, 8.0], dtype=F64)
    tail = s2_grad(u - 1.0, 4.0, beta)
    torch.testing.assert_close(tail, beta / u, rtol=1e-12, atol=0)
    for ui, t in zip(u.tolist(), tail.tolist()):
        assert 0 <= t - beta * ref.if_time_averaged_limit(ui - 1.0, 4.0) <= beta * _gap_bound(
            ui - 1.0, 4.0
        )
    # … and Table 4's S² column (α = 4, β = 1): 0.42, 0.961, 1, 0.9091 at x = -0.5 … 0.1
    table4 = s2_grad(torch.tensor([-0.5, -0.1, 0.0, 0.1], dtype=F64), 4.0, 1.0)
    assert [round(v, n) for v, n in zip(table4.tolist(), (2, 3, 0, 4))] == [0.42, 0.961, 1, 0.9091]


class _SigmoidSpike(torch.autograd.Function):
    """H(z) forward (H(0) = 1), α σ'(αz) = α σ(αz) σ(−αz) backward.

    Written as σ(αz) σ(−αz), not autograd's σ(1 − σ): the latter loses ~1e-7 of relative
    accuracy to cancellation at αz ≈ 20, more than the 1e-9 this test compares at."""

    @staticmethod
    def forward(ctx, z, alpha):
        ctx.save_for_backward(z)
        ctx.alpha = alpha
        return (z >= 0).to(z)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        a = ctx.alpha * z
        return grad * ctx.alpha * torch.sigmoid(a) * torch.sigmoid(-a), None


def _sigmoid_surrogate_spike(z: torch.Tensor, alpha: float) -> torch.Tensor:
    """A multi-step sigmoid surrogate spike (see :class:`_SigmoidSpike`)."""
    return _SigmoidSpike.apply(z, alpha)


def _bptt_rate_grads(spike_fn, x: float, k: int, theta: float = 1.0):
    """Run the K-sub-step IF neuron (no reset) in torch with ``spike_fn`` as the spike,
    output r = mean spike; BPTT gives dr/d(membrane offset) and dr/d(drive u). Also
    returns the potentials v_k the run saw."""
    offset = torch.zeros((), dtype=F64, requires_grad=True)
    u = torch.tensor(theta + x, dtype=F64, requires_grad=True)
    v = offset
    spikes, potentials = [], []
    for _ in range(k):
        v = v + u / k
        potentials.append(v.item())
        spikes.append(spike_fn(v - theta))
    rate = torch.stack(spikes).mean()
    d_offset, d_u = torch.autograd.grad(rate, (offset, u))
    return d_offset.item(), d_u.item(), potentials


@given(x=st.floats(-0.9, 6.0), alpha=alphas, beta=betas, k=st.integers(1, 48))
def test_time_average_is_bptt_gradient_of_multistep_rate(x, alpha, beta, k):
    # Run the K-sub-step IF neuron in torch, output r = mean spike, and BPTT through it:
    # dr/d(membrane offset) is reading (a); dr/d(drive u) is the θ/u² quantity.
    d_offset, d_u, _ = _bptt_rate_grads(lambda z: _sigmoid_surrogate_spike(z, alpha), x, k)
    want_offset = ref.if_time_averaged_surrogate(x, alpha, k)
    want_u = ref.if_rate_drive_gradient(x, alpha, k)
    assert math.isclose(d_offset, want_offset, rel_tol=1e-9, abs_tol=1e-300)
    assert math.isclose(d_u, want_u, rel_tol=1e-9, abs_tol=1e-300)
    # The same multi-step neuron with the package's spike (function and module) as its
    # surrogate: BPTT through it is the time average of the documented g' over the
    # sub-steps it ran through (scalar reference), weighted by k/K w.r.t. the drive.
    for spike_fn in (lambda z: s2_spike(z, alpha, beta), S2Surrogate(alpha, beta)):
        d_offset, d_u, v = _bptt_rate_grads(spike_fn, x, k)
        g = [ref.s2_grad_ref(vi - 1.0, alpha, beta) for vi in v]
        assert math.isclose(d_offset, sum(g) / k, rel_tol=1e-9, abs_tol=1e-300)
        weighted = sum((i + 1) / k * gi for i, gi in enumerate(g)) / k
        assert math.isclose(d_u, weighted, rel_tol=1e-9, abs_tol=1e-300)
        # never at threshold within the step: S² is the sigmoid surrogate there (a tiny
        # negative x can round to u = θ + x = θ exactly, which is at threshold: excluded)
        if 1.0 + x < 1.0:
            assert math.isclose(d_offset, want_offset, rel_tol=1e-9, abs_tol=1e-300)


@given(x=st.floats(0.2, 10.0), beta=betas)
def test_rate_gradient_wrt_drive_is_not_the_tail(x, beta):
    # Documented caveat: w.r.t. the drive the same average is weighted by t = k/K and
    # tends to θ/u² = 1/(1+x)², not 1/(1+x): β times it is the package's tail divided
    # by u, not the tail.
    u = 1.0 + x
    got = beta * ref.if_rate_drive_gradient(x, 200.0, 200_000)
    tail = _g(x, 4.0, beta)
    assert abs(got - tail / u) <= 5e-3 * beta
    assert abs(got - tail) >= 0.5 * beta * (1 / u - 1 / u**2)


@given(x=st.floats(-0.5, 7.5), alpha=st.floats(0.5, 32.0), beta=betas)
def test_time_average_with_reset_matches_its_closed_form(x, alpha, beta):
    # With a reset by subtraction inside the step, each threshold crossing cuts the
    # integrand at its peak: G∞ = [n/2 - (n+1)σ(-αθ) + σ(α(u-(n+1)θ))]/u, n = ⌊u/θ⌋,
    # → n/(2u) as α grows (≈ 1/2, not 1/u). docs/theory.md explains why we drop it.
    theta, k = 1.0, 20_000
    u = theta + x
    n = math.floor(u / theta)
    assume(abs(u / theta - round(u / theta)) > 1e-6)  # keep crossings off the sub-step grid ends
    sig = ref.sigmoid_ref
    closed = (n / 2 - (n + 1) * sig(-alpha * theta) + sig(alpha * (u - (n + 1) * theta))) / u
    sim = ref.if_time_averaged_surrogate(x, alpha, k, theta, reset=True)
    assert abs(sim - closed) <= (n + 1) * alpha / k
    g = _g(x, alpha, beta)
    if x >= 0:
        # the package's tail β/u sits |closed - 1/u|·β away from β × the reset reading
        # (and β·|G∞ - 1/u| ≤ β·gap away from the no-reset one)
        assert abs(abs(g - beta * sim) - beta * abs(closed - 1 / u)) <= (
            beta * (n + 1) * alpha / k + 1e-12
        )
    else:
        # no crossing, so no reset: the two readings coincide, and the package keeps the
        # sigmoid at the step's end, the K = 1 average
        assert math.isclose(sim, ref.if_time_averaged_surrogate(x, alpha, k, theta), rel_tol=1e-9)
        assert math.isclose(g, ref.if_time_averaged_surrogate(x, alpha, 1), rel_tol=1e-12)


# --- reading (b): first-spike time ----------------------------------------------------


@given(x=st.floats(0.0, 20.0), beta=betas, k=st.sampled_from([1, 7, 64, 1000, 100_000]))
def test_first_spike_time_gives_the_log_tail(x, beta, k):
    u = 1.0 + x  # θ = 1
    t_star = 1.0 / u
    t_k = ref.if_first_spike_time(x, k)
    assert t_star - 1e-12 <= t_k <= t_star + 1 / k + 1e-12
    # -ln t_K → -ln t* = ln(1+x) with 0 ≤ ln t_K - ln t* ≤ u/K …
    err = math.log(t_k) - math.log(t_star)
    assert -1e-12 <= err <= u / k + 1e-12
    # … which is the S² primitive's tail: g(x) = β(-ln t*) + 1/2.
    g = s2_primitive(torch.tensor([x], dtype=F64), 4.0, beta).item()
    assert abs(beta * -math.log(t_k) + 0.5 - g) <= beta * u / k + 1e-12


@given(k=st.integers(1, 5000), j=st.integers(1, 64), alpha=alphas, beta=betas)
def test_first_spike_time_on_the_grid_is_exact_and_ties_spike(k, j, alpha, beta):
    # u = K/j puts the crossing exactly on sub-step j (t* = j/K): v_j == θ must spike.
    assume(j <= k)
    x = k / j - 1.0
    v = ref.if_substep_potentials(x, k)
    assume(v[j - 1] == 1.0)  # exact in floating point
    assert ref.if_first_spike_time(x, k) == j / k
    # The package's spike on the simulated sub-step potentials fires first exactly at
    # sub-step j (the tie) and at every later one (no reset), and its gradient at the
    # tie is the tail's g'(0) = β.
    z = torch.tensor(v - 1.0, dtype=F64, requires_grad=True)
    spikes = s2_spike(z, alpha, beta)
    assert spikes.tolist() == [0.0] * (j - 1) + [1.0] * (k - j + 1)
    (grad,) = torch.autograd.grad(spikes[j - 1], z)
    assert grad[j - 1].item() == beta
    # and its primitive at x is the reading's β(-ln t_K) + 1/2, here with t_K = t* exactly
    g = s2_primitive(torch.tensor([x], dtype=F64), alpha, beta).item()
    assert math.isclose(g, beta * -math.log(j / k) + 0.5, rel_tol=1e-12, abs_tol=1e-12)
    if j == k:  # x = 0: the neuron fires at the very end of the step, -ln t* = 0 = g(0) - 1/2
        assert x == 0.0 and s2_primitive(torch.zeros(1, dtype=F64), alpha, beta).item() == 0.5


@given(x=st.floats(-0.999, -1e-6), k=st.sampled_from([1, 64, 100_000]), alpha=alphas,
       beta=betas)
def test_first_spike_reading_has_no_spike_below_threshold(x, k, alpha, beta):
    assert ref.if_first_spike_time(x, k) == math.inf
    # the package agrees: no spike at any sub-step, and below threshold its primitive is
    # the sigmoid branch σ(αx) for every β (not the reading's β ln(1+x) + 1/2, which
    # runs to -∞ as x → -1)
    z = torch.tensor(ref.if_substep_potentials(x, k) - 1.0, dtype=F64)
    assert not bool(s2_spike(z, alpha, beta).any())
    g = s2_primitive(torch.tensor([x], dtype=F64), alpha, beta).item()
    assert math.isclose(g, ref.sigmoid_ref(alpha * x), rel_tol=1e-12, abs_tol=1e-300)


# --- autograd: gradcheck, gradgradcheck, learnable α and β ----------------------------

x_far = st.lists(_away_from_zero(1e-2, -10.0, 10.0), min_size=1, max_size=8)


@given(x=x_far, alpha=st.floats(0.5, 16.0), beta=st.floats(0.25, 4.0))
def test_gradcheck_smooth_mode(x, alpha, beta):
    xt = torch.tensor(x, dtype=F64, requires_grad=True)
    assert gradcheck(S2Surrogate(alpha, beta, spiking=False), (xt,))
    a = torch.tensor(alpha, dtype=F64, requires_grad=True)
    b = torch.tensor(beta, dtype=F64, requires_grad=True)
    assert gradcheck(s2_primitive, (xt, a, b))


@given(x=x_far, alpha=st.floats(0.5, 16.0), beta=st.floats(0.25, 4.0))
def test_gradcheck_smooth_mode_wrt_learnable_parameters(x, alpha, beta):
    sg = S2Surrogate(alpha, beta, spiking=False, learnable=True)
    xt = torch.tensor(x, dtype=F64, requires_grad=True)
    la = torch.tensor(math.log(alpha), dtype=F64, requires_grad=True)
    lb = torch.tensor(math.log(beta), dtype=F64, requires_grad=True)

    def fn(x_, la_, lb_):
        return functional_call(sg, {"log_alpha": la_, "log_beta": lb_}, (x_,))

    assert gradcheck(fn, (xt, la, lb))


@given(x=x_far, alpha=st.floats(0.5, 16.0), beta=st.floats(0.25, 4.0))
def test_gradgradcheck_spike(x, alpha, beta):
    xt = torch.tensor(x, dtype=F64, requires_grad=True)
    assert gradgradcheck(lambda t: s2_spike(t, alpha, beta), (xt,))
    a = torch.tensor(alpha, dtype=F64, requires_grad=True)
    b = torch.tensor(beta, dtype=F64, requires_grad=True)
    assert gradgradcheck(s2_spike, (xt, a, b))


@given(x=x_lists, alpha=alphas, beta=betas, data=st.data())
def test_spiking_mode_alpha_beta_grads_are_those_of_the_primitive(x, alpha, beta, data):
    # Documented choice: with tensor α, β the spiking mode passes them the gradient of
    # the primitive, ∂g/∂α = x σ'(αx) (x < 0) and ∂g/∂β = ln(1 + x) (x ≥ 0).
    xt = torch.tensor(x, dtype=F64)
    w = data.draw(st.lists(st.floats(-2, 2), min_size=len(x), max_size=len(x)))
    w = torch.tensor(w, dtype=F64)
    a = torch.tensor(alpha, dtype=F64, requires_grad=True)
    b = torch.tensor(beta, dtype=F64, requires_grad=True)
    got = torch.autograd.grad((w * s2_spike(xt, a, b)).sum(), (a, b))
    want = torch.autograd.grad((w * s2_primitive(xt, a, b)).sum(), (a, b))
    for g, e in zip(got, want):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
    # … and against the formula written out by hand.
    pairs = list(zip(w.tolist(), x))
    d_alpha = sum(wi * xi * ref.sigmoid_grad_ref(alpha * xi) for wi, xi in pairs if xi < 0)
    d_beta = sum(wi * math.log1p(xi) for wi, xi in pairs if xi >= 0)
    assert math.isclose(got[0].item(), d_alpha, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(got[1].item(), d_beta, rel_tol=1e-9, abs_tol=1e-12)


@given(x=x_lists, alpha=alphas, beta=betas)
def test_learnable_module_grads_agree_between_spiking_and_smooth_mode(x, alpha, beta):
    sg = S2Surrogate(alpha, beta, learnable=True).double()
    xt = torch.tensor(x, dtype=F64)
    spiking = torch.autograd.grad(sg(xt).sum(), (sg.log_alpha, sg.log_beta))
    sg.spiking = False
    smooth = torch.autograd.grad(sg(xt).sum(), (sg.log_alpha, sg.log_beta))
    for g, e in zip(spiking, smooth):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


@given(x=st.one_of(st.just(-1.0), st.floats(-1e3, -1.0)), alpha=alphas, beta=betas)
def test_reference_rejects_bad_arguments(x, alpha, beta):
    with pytest.raises(ValueError, match="num_substeps"):
        ref.if_substep_potentials(0.5, 0)
    with pytest.raises(ValueError, match="u = theta"):
        ref.if_time_averaged_limit(-1.0, 4.0)
    with pytest.raises(ValueError, match="u = theta"):
        ref.if_time_averaged_limit(x, alpha)
    assert np.array_equal(ref.if_substep_potentials(0.0, 2), [0.5, 1.0])
    # Where the readings have no limit (u = 1 + x ≤ 0, the tail's log1p(x) undefined),
    # the package is still the sigmoid branch, finite, and so is its autograd (the unused
    # tail branch never sees x ≤ -1).
    xt = torch.tensor([x], dtype=F64, requires_grad=True)
    want_g, want_dg = ref.s2_primitive_ref(x, alpha, beta), ref.s2_grad_ref(x, alpha, beta)
    g = s2_primitive(xt, alpha, beta)
    (dg,) = torch.autograd.grad(g.sum(), xt)
    (ds,) = torch.autograd.grad(S2Surrogate(alpha, beta)(xt).sum(), xt)
    for got, want in ((g.item(), want_g), (dg.item(), want_dg), (ds.item(), want_dg),
                      (s2_grad(xt.detach(), alpha, beta).item(), want_dg)):
        assert math.isfinite(got) and math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-300)
