"""Bad inputs that used to give silent wrong answers (issue 18) are refused."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from torch import nn

import snn_singlestep as ss
from snn_singlestep import S2Cell, S2Neuron
from snn_singlestep.core.psp import PSPNorm, PSPNorm1d, PSPNorm2d
from snn_singlestep.errors import ConfigError, ShapeError
from snn_singlestep.export import to_nir


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), S2Cell(threshold=0.2), nn.Linear(5, 3)).eval()


# --- 1. export: a time axis in front of a [B, F] batch --------------------------------------


def test_to_onnx_refuses_time_major_sample_to_a_plain_mlp(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from snn_singlestep.export import to_onnx

    net = _mlp()
    target = tmp_path / "a.onnx"
    # Linear broadcasts over the leading T=4 axis: it used to export input ['batch', 2, 6].
    with pytest.raises(ShapeError, match=r"\(4, 2, 6\).*\[B, \.\.\.\].*T=4") as err:
        to_onnx(net, torch.rand(4, 2, 6), target)
    assert "'0'" in str(err.value) and "(2, 6)" in str(err.value)
    assert not target.exists()
    # [1, B, F] to a net that does not squeeze the axis itself: same problem
    with pytest.raises(ShapeError, match=r"\(1, 2, 6\)"):
        to_onnx(net, torch.rand(1, 2, 6), target)
    assert not target.exists()
    to_onnx(net, torch.rand(2, 6), target)  # one batch [B, F] still exports
    assert target.exists()


def test_to_nir_refuses_time_major_sample_to_plain_nets():
    with pytest.raises(ShapeError, match=r"\(4, 2, 6\).*\[B, \.\.\.\]"):
        to_nir(_mlp(), torch.rand(4, 2, 6))
    # a Conv2d first layer takes [B, C, H, W]; the 5-D sample already fails to run
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), S2Cell(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    with pytest.raises(ShapeError, match=r"\(3, 2, 1, 6, 6\)"):
        to_nir(cnn.eval(), torch.rand(3, 2, 1, 6, 6))
    # nets that squeeze a time axis of size 1 themselves are still accepted
    from snn_singlestep.models import SingleStepMLP

    squeezing = SingleStepMLP(6, 3, hidden=(5,), framework="torch").eval()
    graph = to_nir(squeezing, torch.rand(1, 2, 6))
    assert list(graph.nodes["input"].input_type["input"]) == [6]


# --- 2. calibrated collapse with NaN/inf calibration data ------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_calibration_refuses_non_finite_data(bad):
    src = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(8, 3))
    good = torch.rand(16, 6)
    poisoned = torch.rand(16, 6)
    poisoned[0, :3] = bad
    with pytest.raises(ConfigError, match=r"batch 1 .*3 non-finite values"):
        ss.snntorch.collapse(src, mode="calibrated", data=[good, (poisoned, None)], T=4)
    net = ss.snntorch.collapse(src, mode="calibrated", data=[good], T=4)
    assert bool(torch.isfinite(net[1].threshold).all())


# --- 3. PSPNorm: empty batches and single values per channel in training --------------------


@pytest.mark.parametrize(
    "norm, shape",
    [
        (PSPNorm1d(3), (0, 3)),
        (PSPNorm1d(3), (0, 3, 4)),
        (PSPNorm2d(3), (0, 3, 2, 2)),
        (PSPNorm(3), (2, 3, 0)),
    ],
)
def test_psp_norm_refuses_empty_batch_in_training(norm, shape):
    before = norm.running_sq_mean.clone()
    with pytest.raises(ShapeError, match="empty batch"):
        norm(torch.rand(shape))
    assert torch.equal(norm.running_sq_mean, before)  # not turned into NaN
    assert int(norm.num_batches_tracked) == 0


@pytest.mark.parametrize(
    "norm, shape",
    [(PSPNorm1d(3), (1, 3)), (PSPNorm2d(3), (1, 3, 1, 1)), (PSPNorm(3), (1, 3, 1))],
)
def test_psp_norm_refuses_one_value_per_channel_in_training(norm, shape):
    with pytest.raises(ShapeError, match="more than 1 value per channel"):
        norm(torch.rand(shape) - 0.5)  # used to return only the signs
    assert int(norm.num_batches_tracked) == 0
    norm(torch.rand(2, *shape[1:]))  # two values per channel are fine
    assert int(norm.num_batches_tracked) == 1
    norm.eval()  # eval uses the running statistic: a batch of one is fine
    assert norm(torch.rand(shape)).shape == shape


def test_psp_norm_batch_statistics_without_running_stats():
    norm = PSPNorm1d(3, track_running_stats=False).eval()  # eval uses batch statistics
    with pytest.raises(ShapeError, match="more than 1 value per channel"):
        norm(torch.rand(1, 3))
    assert norm(torch.rand(2, 3)).shape == (2, 3)


# --- 4. non-finite thresholds through load_state_dict ----------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("learn", [False, True])
def test_s2cell_load_state_dict_refuses_non_finite_threshold(bad, learn):
    net = nn.Sequential(nn.Linear(4, 3), S2Cell(threshold=torch.ones(3), learn_threshold=learn))
    state = net.state_dict()
    state["1.threshold"] = torch.tensor([0.5, bad, 1.0])
    with pytest.raises(ConfigError, match=r"'1\.threshold'.*finite"):
        net.load_state_dict(state)
    assert torch.equal(net[1].threshold.detach(), torch.ones(3))
    state["1.threshold"] = torch.full((3,), 0.25)
    net.load_state_dict(state)
    assert torch.equal(net[1].threshold.detach(), torch.full((3,), 0.25))


@pytest.mark.parametrize("bad", [float("nan"), -float("inf")])
@pytest.mark.parametrize("learn", [False, True])
def test_s2neuron_load_state_dict_refuses_non_finite_threshold(bad, learn):
    net = nn.Sequential(
        nn.Linear(4, 3), S2Neuron(beta=0.5, init_hidden=True, learn_threshold=learn)
    )
    state = net.state_dict()
    assert "1.threshold" in state
    state["1.threshold"] = torch.tensor(bad)
    with pytest.raises(ConfigError, match=r"'1\.threshold'.*finite"):
        net.load_state_dict(state)
    assert float(net[1].threshold.detach()) == 1.0
    state["1.threshold"] = torch.tensor(0.5, dtype=state["1.threshold"].dtype)
    net.load_state_dict(state)
    assert float(net[1].threshold.detach()) == 0.5


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_converted_if_neuron_load_state_dict_refuses_non_finite_threshold(bad):
    from snn_singlestep.snntorch import ConvertedIFNeuron

    net = nn.Sequential(nn.Linear(4, 3), ConvertedIFNeuron(noise_std=0.4, init_hidden=True))
    state = net.state_dict()
    state["1.threshold"] = torch.tensor(bad, dtype=state["1.threshold"].dtype)
    with pytest.raises(ConfigError, match=r"'1\.threshold'.*finite"):
        net.load_state_dict(state)
    assert float(net[1].threshold.detach()) == 1.0


# --- 5. learnable parameters stay in range after optimiser steps ------------------------------


def _push(param: torch.nn.Parameter, grad: float) -> None:
    """One SGD step (lr 1) with gradient ``grad`` on ``param``: ``param -= grad``."""
    opt = torch.optim.SGD([param], lr=1.0)
    param.grad = torch.full_like(param, grad)
    opt.step()


@pytest.mark.parametrize("grad, used", [(-100.0, 1.0), (100.0, 0.0)])
def test_multifield_decay_is_clamped_after_an_optimiser_step(grad, used):
    from snn_singlestep.core.multifield import MultiFieldBlock, multifield_lif

    torch.manual_seed(0)
    block = MultiFieldBlock(nn.Conv2d(1, 2, 3, padding=1), window=4, decay=0.4)
    _push(block.decay, grad)
    assert not 0.0 <= float(block.decay.detach()) <= 1.0  # the parameter itself left the range
    assert float(block.carry().detach()) == used
    x = torch.rand(2, 1, 6, 6)
    # independent computation: the recurrence with λ at the bound, then the mean projection
    currents = block._currents(x)
    expected, _ = multifield_lif(currents, used, block.threshold, block.surrogate)
    assert torch.equal(block(x), expected.mean(0))


def test_multifield_decay_out_of_range_is_refused():
    from snn_singlestep.core.multifield import MultiFieldBlock

    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match=r"decay must be in \[0, 1\]"):
            MultiFieldBlock(nn.Identity(), decay=bad)


@pytest.mark.parametrize("grad", [1e4, -1e4])
def test_learnable_surrogate_alpha_beta_stay_in_range(grad):
    from snn_singlestep.core.surrogate import MAX_SHAPE, MIN_SHAPE, S2Surrogate

    sg = S2Surrogate(learnable=True)
    _push(sg.log_alpha, grad)
    _push(sg.log_beta, grad)
    for value in (sg.alpha, sg.beta):
        assert MIN_SHAPE * (1 - 1e-6) <= float(value.detach()) <= MAX_SHAPE * (1 + 1e-6)
    x = torch.linspace(-2, 2, 9, requires_grad=True)
    sg(x).sum().backward()
    assert bool(torch.isfinite(x.grad).all())
    with pytest.raises(ConfigError, match="learnable alpha must be >= 0.0001"):
        S2Surrogate(alpha=1e-6, learnable=True)


@pytest.mark.parametrize("grad", [1e4, -1e4])
def test_learnable_noise_std_stays_in_range(grad):
    from snn_singlestep.core.noise import LEARNABLE_STD_RANGE, MembraneNoise

    cell = S2Cell(noise_std=MembraneNoise(0.4, learnable=True, seed=0)).train()
    _push(cell.noise.log_std, grad)
    lo, hi = LEARNABLE_STD_RANGE
    assert lo * (1 - 1e-6) <= float(cell.noise.std.detach()) <= hi * (1 + 1e-6)
    assert bool(torch.isfinite(cell(torch.rand(4, 3))).all())


def test_learnable_threshold_after_a_large_step_is_still_used_as_is():
    # A threshold has no range beyond "finite": a finite step keeps it finite, and the
    # neuron fires by it (no hidden clamp).
    cell = S2Cell(threshold=0.5, learn_threshold=True)
    _push(cell.threshold, 1e30)
    assert float(cell.threshold.detach()) == pytest.approx(-1e30)
    assert torch.equal(cell(torch.rand(2, 3)), torch.ones(2, 3))


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: ss.S2Surrogate(learnable=True), "log_alpha"),
        (lambda: ss.MembraneNoise(0.4, learnable=True), "log_std"),
        (lambda: ss.MultiFieldBlock(nn.Identity()), "decay"),
        (lambda: ss.MultiFieldBlock(nn.Identity(), learn_threshold=False), "threshold"),
        (lambda: PSPNorm2d(3), "running_sq_mean"),
        (lambda: PSPNorm1d(3), "weight"),
    ],
)
def test_load_state_dict_refuses_non_finite_log_parameters(make, key):
    module = make()
    state = module.state_dict()
    before = {k: v.clone() for k, v in state.items()}
    state[key] = torch.full_like(state[key], float("nan"))
    with pytest.raises(ConfigError, match=rf"'{key}'.*finite"):
        module.load_state_dict(state)
    for k, v in module.state_dict().items():  # nothing was loaded
        assert torch.equal(v, before[k])


# --- 6. truthy strings as flags -----------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda v: S2Cell(learn_threshold=v),
        lambda v: ss.S2Surrogate(learnable=v),
        lambda v: ss.s2nn(learnable=v),
        lambda v: ss.MembraneNoise(0.4, learnable=v),
        lambda v: ss.set_noise_std(_mlp(), 0.4, learnable=v),
        lambda v: S2Neuron(init_hidden=v),
        lambda v: ss.S2Node(store_v_seq=v),
        lambda v: ss.PSPNorm1d(3, affine=v),
        lambda v: ss.MultiFieldBlock(nn.Identity(), recurrent=v),
        lambda v: ss.collapse(_mlp(), inplace=v),
        lambda v: ss.to_multistep(_mlp(), T=2, mapping="plain", inplace=v),
        lambda v: ss.register(overwrite=v),
        lambda v: ss.preact_resnet(8, bottleneck=v),
        lambda v: ss.convert.SingleStepInput(2, add_time=v),
    ],
)
@pytest.mark.parametrize("value", ["no", "False", 1, None])
def test_truthy_values_are_refused_as_flags(call, value):
    with pytest.raises(ConfigError, match=rf"must be True or False, got {value!r}"):
        call(value)


# --- 7. options ignored in the mode given ----------------------------------------------------


@pytest.mark.parametrize(
    "option, value",
    [("T", 4), ("granularity", "channel"), ("channel_dim", -1), ("run_original", lambda n, x: n(x)),
     ("data", [torch.rand(2, 6)])],
)
def test_calibration_options_are_refused_in_exact_mode(option, value):
    src = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.9, init_hidden=True))
    with pytest.raises(ConfigError, match=rf"^{option} is only used with mode='calibrated'"):
        ss.snntorch.collapse(src, **{option: value})
    with pytest.raises(ConfigError, match="T, granularity are only used"):
        ss.snntorch.collapse(src, T=4, granularity="channel")


# --- 8. thresholds and factors of the wrong dtype or size -------------------------------------


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.tensor([1, 2]), "floating-point"),
        (torch.tensor([True]), "floating-point"),
        (torch.ones(2, dtype=torch.complex64), "floating-point"),
        (torch.ones(0), "empty tensor"),
    ],
)
@pytest.mark.parametrize(
    "make",
    [
        lambda t: S2Cell(threshold=t),
        lambda t: S2Neuron(threshold=t),
        lambda t: ss.snntorch.ConvertedIFNeuron(threshold=t, noise_std=0.4),
        lambda t: ss.spikingjelly.ConvertedIFNode(threshold=t, noise_std=0.4),
    ],
)
def test_threshold_tensors_of_a_bad_dtype_or_size_are_refused(make, bad, match):
    with pytest.raises(ConfigError, match=match):
        make(bad)


def test_graded_spikes_factor_must_be_one_value():
    with pytest.raises(ConfigError, match="graded_spikes_factor must be a number or a one-element"):
        S2Neuron(graded_spikes_factor=torch.ones(3))


@pytest.mark.parametrize(
    "neuron",
    [S2Cell(threshold=torch.ones(7)), ss.snntorch.ConvertedIFNeuron(torch.ones(7), noise_std=0.4)],
)
def test_threshold_that_does_not_broadcast_is_a_shape_error(neuron):
    with pytest.raises(ShapeError, match=r"threshold of shape \(7,\) does not broadcast.*\(2, 6\)"):
        neuron(torch.rand(2, 6))


def test_a_class_or_a_non_tensor_function_is_refused_as_surrogate():
    with pytest.raises(ConfigError, match="an instance, not the class itself"):
        S2Cell(surrogate=ss.S2Surrogate)
    with pytest.raises(ConfigError, match=r"surrogate must map a tensor .* nan of type float"):
        S2Cell(surrogate=lambda x: float("nan"))


# --- 9. the wrong kind of object -------------------------------------------------------------


def test_set_noise_std_and_energy_report_refuse_non_modules():
    from snn_singlestep.energy import compare, energy_report

    for bad in (object(), "net", torch.ones(3)):
        with pytest.raises(ConfigError, match="net must be a torch.nn.Module"):
            ss.set_noise_std(bad, 0.4)
        with pytest.raises(ConfigError, match="model must be a torch.nn.Module"):
            energy_report(bad, torch.rand(2, 6))
    with pytest.raises(ConfigError, match="example_input must be a torch.Tensor"):
        energy_report(_mlp(), [[0.0] * 6])
    with pytest.raises(ConfigError, match=r"reports\['a'\] must be an EnergyReport"):
        compare({"a": 1.0})
    with pytest.raises(ConfigError, match="forward must take 2 positional arguments"):
        energy_report(_mlp(), torch.rand(2, 6), forward=nn.Identity())


def test_to_multistep_refuses_noise_std_that_plain_mapping_ignores():
    net = nn.Sequential(nn.Linear(6, 5), S2Cell(threshold=0.2, noise_std=0.4))
    with pytest.raises(ConfigError, match="noise_std is only used with mapping='matched'"):
        ss.to_multistep(net, T=4, mapping="plain", noise_std=0.3)
    ss.to_multistep(net, T=4, mapping="plain")  # the neuron's own σ is simply not used
    ss.to_multistep(net, T=4, mapping="matched", noise_std=0.3)
