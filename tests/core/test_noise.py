"""Membrane noise for training and the T=N integrate-and-fire conversion maths (core only).

Oracles: the same seeded generator drawn by hand; ``math.erf`` for Φ; plain Python loops
for the IF neuron; finite differences for slopes.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from snn_singlestep.core import S2Cell, s2_neuron_step
from snn_singlestep.core.ifconvert import (
    ConvertedIF,
    if_conversion_params,
    if_drive,
    if_spike_count,
    if_step,
)
from snn_singlestep.core.noise import (
    LinearNoiseSchedule,
    MembraneNoise,
    as_membrane_noise,
    current_noise_std,
    noise_kwargs,
    noisy_spike_probability,
    set_noise_std,
    step_noise_schedules,
)
from snn_singlestep.errors import ConfigError

SQRT_2PI = math.sqrt(2 * math.pi)


def phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


# --- s2_neuron_step with noise -----------------------------------------------------------


def test_noise_is_sigma_times_the_generators_standard_normal():
    current = torch.linspace(-1, 2, 7)
    spike, v = s2_neuron_step(
        current, 0.5, noise_std=0.3, generator=torch.Generator().manual_seed(11)
    )
    eps = torch.randn(7, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(v, current + 0.3 * eps)
    assert spike.tolist() == [float(x >= 0.5) for x in v.tolist()]


def test_zero_noise_draws_nothing_and_returns_the_current_itself():
    current = torch.rand(5)
    state = torch.get_rng_state()
    _, v = s2_neuron_step(current, 0.5, noise_std=0.0)
    assert v is current
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.3"], ids=repr)
def test_bad_noise_std_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="noise_std"):
        s2_neuron_step(torch.zeros(2), noise_std=bad)


@pytest.mark.parametrize("current", [0.2, 0.5, 0.9])
def test_spike_probability_is_phi_of_distance_over_sigma(current):
    sigma, theta, n = 0.4, 0.6, 200_000
    spike, _ = s2_neuron_step(
        torch.full((n,), current, dtype=torch.float64), theta, noise_std=sigma,
        generator=torch.Generator().manual_seed(0),
    )
    expected = phi((current - theta) / sigma)
    assert abs(spike.mean().item() - expected) < 4 * math.sqrt(0.25 / n)
    closed = noisy_spike_probability(torch.tensor([current], dtype=torch.float64), theta, sigma)
    assert closed.item() == pytest.approx(expected, abs=1e-12)


def test_learnable_noise_gradient_is_eps_times_membrane_gradient():
    sigma = torch.tensor(0.3, requires_grad=True)
    current = torch.linspace(0.0, 1.0, 6, requires_grad=True)
    spike, v = s2_neuron_step(current, 0.5, noise_std=sigma,
                              generator=torch.Generator().manual_seed(4))
    (v * torch.arange(6.0)).sum().backward()
    eps = torch.randn(6, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(sigma.grad, (eps * torch.arange(6.0)).sum())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_noise_keeps_dtype(dtype):
    spike, v = s2_neuron_step(torch.zeros(4, dtype=dtype), 0.0, noise_std=0.5)
    assert spike.dtype == v.dtype == dtype


# --- MembraneNoise and the S2Cell option ------------------------------------------------


def test_noise_only_in_train_mode():
    cell = S2Cell(threshold=1.0, noise_std=0.5)
    x = torch.full((1000,), 0.8)
    assert 0.2 < cell(x).mean().item() < 0.5  # Φ(-0.4) ≈ 0.34
    cell.eval()
    assert cell(x).sum().item() == 0.0


def test_seeded_cells_draw_the_same_noise_and_other_seeds_differ():
    x = torch.full((64,), 1.0)
    first, same, other = (S2Cell(noise_std=MembraneNoise(0.5, seed=s)) for s in (1, 1, 2))
    a, b, c = first(x), same(x), other(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    eps = torch.randn(64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, (1.0 + 0.5 * eps >= 1.0).float())


def test_unseeded_noise_follows_torch_manual_seed():
    cell = S2Cell(noise_std=0.5)
    x = torch.full((64,), 1.0)
    torch.manual_seed(5)
    first = cell(x)
    torch.manual_seed(5)
    assert torch.equal(cell(x), first)


def test_noisy_cell_survives_torch_save_and_keeps_its_stream_position():
    cell = S2Cell(noise_std=MembraneNoise(0.5, seed=3))
    x = torch.full((32,), 1.0)
    cell(x)
    buffer = io.BytesIO()
    torch.save(cell, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded(x), cell(x))


def test_learnable_noise_gets_a_gradient_and_stays_positive():
    cell = S2Cell(noise_std=MembraneNoise(0.4, learnable=True, seed=0))
    x = torch.linspace(0.0, 2.0, 50, requires_grad=True)
    cell(x).sum().backward()
    assert cell.noise.log_std.grad is not None and cell.noise.log_std.grad != 0
    assert float(cell.noise.std.detach()) == pytest.approx(0.4)
    assert "noise.log_std" in cell.state_dict()


def test_schedule_steps_and_set_std():
    noise = MembraneNoise(LinearNoiseSchedule(0.0, 0.4, 4))
    seen = []
    for _ in range(6):
        seen.append(round(noise.std, 6))
        noise.step()
    assert seen == [0.0, 0.1, 0.2, 0.3, 0.4, 0.4]
    noise.set_std(0.25)
    assert noise.std == 0.25 and noise.schedule is None


def test_scheduled_noise_is_off_at_zero_and_on_later():
    cell = S2Cell(noise_std=LinearNoiseSchedule(0.0, 0.5, 1))
    x = torch.full((100,), 0.9)
    assert cell(x).sum().item() == 0.0  # σ = 0: deterministic and below threshold
    step_noise_schedules(cell)
    assert cell.noise.std == 0.5 and cell(x).sum().item() > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"std": -1.0}, "noise_std"),
        ({"std": 0.0, "learnable": True}, "std > 0"),
        ({"std": LinearNoiseSchedule(0, 1, 2), "learnable": True}, "schedule"),
        ({"std": 0.1, "seed": 1.5}, "seed"),
        ({"std": 0.1, "learnable": 1}, "learnable"),
    ],
)
def test_membrane_noise_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MembraneNoise(**kwargs)


def test_cell_rejects_negative_noise_with_a_named_error():
    with pytest.raises(ConfigError, match="noise_std must be >= 0"):
        S2Cell(noise_std=-0.2)


def test_as_membrane_noise_and_noise_kwargs():
    assert as_membrane_noise(None) is None and as_membrane_noise(0) is None
    noise = as_membrane_noise(0.3)
    assert isinstance(noise, MembraneNoise) and noise.std == 0.3
    x = torch.zeros(1)
    assert noise_kwargs(noise, False, x) == {} and noise_kwargs(None, True, x) == {}
    assert noise_kwargs(noise, True, x)["noise_std"] == 0.3


def test_set_noise_std_reaches_every_neuron_with_distinct_seeds():
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), S2Cell(), torch.nn.Sequential(S2Cell()))
    assert set_noise_std(net, 0.2, seed=10) == ["1", "2.0"]
    assert (net[1].noise.seed, net[2][0].noise.seed) == (10, 11)
    assert current_noise_std(net[1]) == 0.2 and current_noise_std(net[0]) == 0.0
    set_noise_std(net, 0.0)
    assert net[1].noise is None and current_noise_std(net[1]) == 0.0


# --- the converted IF neuron ------------------------------------------------------------


def test_conversion_params_match_the_documented_table():
    a, b, c = if_conversion_params(0.8, 0.5, "matched")
    w = 0.5 * SQRT_2PI
    assert (a, b, c) == pytest.approx((1 / w, 0.5 - 0.8 / w, 0.5))
    assert if_conversion_params(0.8, 0.0, "plain") == pytest.approx((1 / 0.8, 0.0, 0.0))


@pytest.mark.parametrize(
    "args, match",
    [((1.0, 0.0, "matched"), "noise_std > 0"), ((0.0, 0.3, "plain"), "threshold > 0"),
     ((1.0, 0.3, "ramp"), "mapping")],
)
def test_conversion_params_errors(args, match):
    with pytest.raises(ConfigError, match=match):
        if_conversion_params(*args)


def test_matched_ramp_has_phis_value_and_slope_at_threshold():
    theta, sigma, h = 0.7, 0.3, 1e-6
    def ramp(i: float) -> float:
        drive = if_drive(torch.tensor(i, dtype=torch.float64), theta, sigma)
        return min(1.0, max(0.0, float(drive)))

    def expected(i: float) -> float:
        return phi((i - theta) / sigma)

    assert ramp(theta) == pytest.approx(expected(theta)) == pytest.approx(0.5)
    slope_ramp = (ramp(theta + h) - ramp(theta - h)) / (2 * h)
    slope_phi = (expected(theta + h) - expected(theta - h)) / (2 * h)
    assert slope_ramp == pytest.approx(slope_phi, rel=1e-5)
    # ramp − Φ grows while the ramp is below 1 (slope 1/√(2π) ≥ φ), so the largest gap is
    # at the corner z* = √(π/2): 1 − Φ(√(π/2)) ≈ 0.105 (documented in core.noise)
    grid = [theta + sigma * z / 10_000 for z in range(-50_000, 50_001)]
    gap = max(abs(ramp(i) - expected(i)) for i in grid)
    assert gap == pytest.approx(1 - phi(math.sqrt(math.pi / 2)), abs=1e-4)


def simulate_if(drives: list[float], v_init: float) -> list[float]:
    """Plain-float IF neuron: charge, fire at 1, subtract 1."""
    u, spikes = v_init, []
    for d in drives:
        u += d
        s = 1.0 if u >= 1.0 else 0.0
        u -= s
        spikes.append(s)
    return spikes


@given(
    drive=st.floats(-1.5, 2.5, allow_nan=False),
    steps=st.integers(1, 40),
    v_init=st.sampled_from([0.0, 0.5, 0.25]),
)
def test_spike_count_closed_form_matches_simulation(drive, steps, v_init):
    exact = v_init + steps * drive
    assume(all(abs(v_init + t * drive - round(v_init + t * drive)) > 1e-6
               for t in range(1, steps + 1)))  # float ties aside
    assume(abs(exact - round(exact)) > 1e-6)
    simulated = sum(simulate_if([drive] * steps, v_init))
    count = if_spike_count(torch.tensor(drive, dtype=torch.float64), steps, v_init)
    assert count.item() == simulated


@given(
    currents=st.lists(st.floats(-2, 3, allow_nan=False), min_size=1, max_size=12),
    theta=st.floats(0.2, 2.0),
    sigma=st.floats(0.05, 1.0),
    mapping=st.sampled_from(["matched", "plain"]),
)
def test_converted_if_module_matches_plain_loop(currents, theta, sigma, mapping):
    a, b, c = if_conversion_params(theta, sigma, mapping)
    expected = simulate_if([a * i + b for i in currents], c)
    neuron = ConvertedIF(theta, noise_std=sigma, mapping=mapping)
    x = torch.tensor(currents, dtype=torch.float64)
    got = [neuron(x[t : t + 1]).item() for t in range(len(currents))]
    # the module computes a*i + b in float64 too; ties at exactly 1 are measure-zero here
    assert got == expected


@given(current=st.floats(-3, 3, allow_nan=False), theta=st.floats(0.1, 2.0),
       sigma=st.floats(0.01, 2.0), mapping=st.sampled_from(["matched", "plain"]))
def test_first_step_is_the_deterministic_single_step_neuron(current, theta, sigma, mapping):
    neuron = ConvertedIF(theta, noise_std=sigma, mapping=mapping)
    x = torch.tensor([current], dtype=torch.float64)
    assume(abs(current - theta) > 1e-9)
    assert neuron(x).item() == float(current >= theta)


def test_converted_rate_approaches_the_ramp_within_half_over_n():
    theta, sigma = 1.0, 0.4
    currents = torch.linspace(0.0, 2.0, 101, dtype=torch.float64)
    ramp = if_drive(currents, theta, sigma).clamp(0, 1)
    for steps in (4, 16, 64):
        neuron = ConvertedIF(theta, noise_std=sigma)
        rate = sum(neuron(currents) for _ in range(steps)) / steps
        assert (rate - ramp).abs().max().item() <= 0.5 / steps + 1e-12


def test_converted_if_reset_and_shape_change_restart_from_v_init():
    neuron = ConvertedIF(1.0, noise_std=0.4)
    x = torch.tensor([0.9])
    first = [neuron(x).item() for _ in range(3)]
    neuron.reset()
    assert [neuron(x).item() for _ in range(3)] == first
    neuron(torch.zeros(2, 2))
    assert neuron.v.shape == (2, 2)


def test_if_step_gradient_flows_through_the_surrogate():
    drive = torch.tensor([0.7], requires_grad=True)
    spike, _ = if_step(drive, torch.tensor([0.5]))
    spike.sum().backward()
    assert drive.grad.item() > 0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: set_noise_std("net", 1.0), "net must be a torch.nn.Module, got str"),
        (lambda: set_noise_std(torch.nn.Linear(2, 2), "x"), "noise_std"),
        (lambda: set_noise_std(torch.nn.Linear(2, 2), -0.5), "noise_std must be >= 0"),
        (lambda: set_noise_std(torch.nn.Linear(2, 2), 0.4, learnable="yes"), "learnable"),
        (lambda: step_noise_schedules(3), "net must be a torch.nn.Module, got int"),
    ],
)
def test_noise_helpers_name_a_bad_argument_even_without_neurons(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
