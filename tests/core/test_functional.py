"""The single-step neuron function, the T=1 shape check and the plain-torch S2Cell."""

import pytest
import torch

from snn_singlestep.core import S2Cell, s2_grad, s2_neuron_step, squeeze_time
from snn_singlestep.errors import ConfigError, ShapeError


def test_step_spikes_at_and_above_threshold_and_returns_membrane():
    current = torch.tensor([0.0, 0.99, 1.0, 2.5])
    spike, v = s2_neuron_step(current, threshold=1.0)
    assert spike.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert v is current


def test_step_gradient_is_surrogate_of_v_minus_threshold():
    current = torch.tensor([0.2, 1.3], requires_grad=True)
    spike, _ = s2_neuron_step(current, threshold=0.5)
    spike.sum().backward()
    torch.testing.assert_close(current.grad, s2_grad(current.detach() - 0.5))


def test_step_with_per_feature_threshold_tensor():
    spike, _ = s2_neuron_step(torch.ones(2, 3), threshold=torch.tensor([0.5, 1.0, 1.5]))
    assert spike.tolist() == [[1.0, 1.0, 0.0]] * 2


def test_squeeze_time_accepts_plain_and_unit_time_dim():
    x = torch.randn(4, 8)
    assert squeeze_time(x, 2) is x
    torch.testing.assert_close(squeeze_time(x.unsqueeze(0), 2), x)


def test_squeeze_time_rejects_time_dim_above_one_with_advice():
    with pytest.raises(ShapeError, match=r"T=5.*single-step.*mean\(0\)"):
        squeeze_time(torch.randn(5, 4, 8), 2)


def test_squeeze_time_rejects_wrong_rank():
    with pytest.raises(ShapeError, match=r"2 dims.*shape \(8,\)"):
        squeeze_time(torch.randn(8), 2)


class TestS2Cell:
    def test_stateless_and_dtype_preserving(self):
        cell = S2Cell(threshold=0.5)
        for dtype in (torch.float16, torch.bfloat16, torch.float64):
            x = torch.tensor([0.4, 0.5, 0.6], dtype=dtype)
            first = cell(x)
            assert first.dtype == dtype and first.tolist() == [0.0, 1.0, 1.0]
            cell(torch.full_like(x, 10.0))
            assert torch.equal(cell(x), first)

    def test_learn_threshold_receives_gradient(self):
        cell = S2Cell(threshold=1.0, learn_threshold=True)
        x = torch.tensor([0.5, 1.5])
        cell(x).sum().backward()
        expected = -s2_grad(x.double() - 1.0).sum()
        assert cell.threshold.dtype == torch.float64  # a float threshold is kept exact
        torch.testing.assert_close(cell.threshold.grad, expected)

    def test_buffer_threshold_in_state_dict(self):
        assert set(S2Cell(0.3).state_dict()) == {"threshold"}

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1", None])
    def test_invalid_threshold(self, bad):
        with pytest.raises(ConfigError, match="threshold"):
            S2Cell(threshold=bad)

    def test_non_callable_surrogate(self):
        with pytest.raises(ConfigError, match="surrogate"):
            S2Cell(surrogate=3.0)

    def test_repr(self):
        assert repr(S2Cell(0.5, learn_threshold=True)).startswith(
            "S2Cell(\n  threshold=0.5, learn_threshold=True"
        )
