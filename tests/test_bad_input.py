"""Bad inputs that used to give silent wrong answers (issue 18) are refused."""

from __future__ import annotations

import snntorch as snn
import pytest
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
