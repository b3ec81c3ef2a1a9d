"""PSP normalization: the second raw moment, running stats, gradients, dtypes, errors."""

import io

import pytest
import torch

from snn_singlestep.core.psp import PSPNorm, PSPNorm1d, PSPNorm2d
from snn_singlestep.errors import ConfigError, ShapeError


def _reference(p, weight, bias, eps):
    """Independent formula: per-channel E[p^2] over every axis but 1, no mean removed."""
    dims = [d for d in range(p.ndim) if d != 1]
    sq_mean = (p * p).sum(dim=dims) / (p.numel() / p.shape[1])
    shape = [1, -1] + [1] * (p.ndim - 2)
    return weight.view(shape) * p / torch.sqrt(sq_mean.view(shape) + eps) + bias.view(shape)


@pytest.mark.parametrize("shape", [(16, 5), (8, 5, 7), (4, 5, 3, 3)], ids=str)
def test_training_output_has_unit_second_moment_and_keeps_sign(shape):
    norm = PSPNorm(5)
    p = torch.randn(shape) * 3 + 2
    y = norm(p)
    dims = [d for d in range(p.ndim) if d != 1]
    torch.testing.assert_close(y.square().mean(dims), torch.ones(5), rtol=1e-4, atol=1e-4)
    assert torch.equal(torch.sign(y), torch.sign(p))  # no mean subtracted


def test_positive_constant_stays_positive_unlike_batchnorm():
    p = torch.full((8, 3, 2, 2), 0.7)
    assert (PSPNorm2d(3)(p) > 0).all()
    assert torch.allclose(torch.nn.BatchNorm2d(3)(p), torch.zeros_like(p), atol=1e-5)


def test_matches_reference_formula_with_affine():
    norm = PSPNorm2d(4, eps=1e-3)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 1.0, 2.0, -1.0]))
        norm.bias.copy_(torch.tensor([0.1, 0.0, -0.2, 0.3]))
    p = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    norm = norm.double()
    torch.testing.assert_close(norm(p), _reference(p, norm.weight, norm.bias, 1e-3))


def test_gradcheck_against_autograd_in_float64():
    norm = PSPNorm2d(3).double()
    p = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(norm, (p,))
    # and the parameters' gradients equal those of the reference formula
    norm(p).sin().sum().backward()
    got = (norm.weight.grad.clone(), norm.bias.grad.clone())
    w = norm.weight.detach().clone().requires_grad_()
    b = norm.bias.detach().clone().requires_grad_()
    _reference(p.detach(), w, b, norm.eps).sin().sum().backward()
    torch.testing.assert_close(got, (w.grad, b.grad))


def test_running_estimate_and_eval_mode():
    norm = PSPNorm1d(2, momentum=0.5)
    first = torch.tensor([[1.0, 2.0], [3.0, 2.0]])  # E[p^2] = (5, 4)
    second = torch.tensor([[2.0, 0.0], [2.0, 0.0]])  # E[p^2] = (4, 0)
    norm(first)
    torch.testing.assert_close(norm.running_sq_mean, torch.tensor([3.0, 2.5]))
    norm(second)
    torch.testing.assert_close(norm.running_sq_mean, torch.tensor([3.5, 1.25]))
    assert norm.num_batches_tracked.item() == 2
    norm.eval()
    x = torch.tensor([[1.0, 1.0]])
    expected = x / torch.sqrt(torch.tensor([3.5, 1.25]) + norm.eps)
    torch.testing.assert_close(norm(x), expected)
    assert norm.num_batches_tracked.item() == 2  # eval does not update


def test_cumulative_average_when_momentum_is_none():
    norm = PSPNorm1d(1, momentum=None)
    for value in (1.0, 2.0, 3.0):
        norm(torch.full((4, 1), value))
    torch.testing.assert_close(norm.running_sq_mean, torch.tensor([(1 + 4 + 9) / 3]))


def test_without_running_stats_eval_uses_batch():
    norm = PSPNorm1d(2, track_running_stats=False).eval()
    p = torch.randn(6, 2) * 5
    torch.testing.assert_close(norm(p).square().mean(0), torch.ones(2), rtol=1e-4, atol=1e-4)
    assert set(norm.state_dict()) == {"weight", "bias"}


def test_state_dict_and_torch_save():
    norm = PSPNorm2d(3, affine=False)
    norm(torch.randn(4, 3, 2, 2) * 2)
    assert set(norm.state_dict()) == {"running_sq_mean", "num_batches_tracked"}
    buffer = io.BytesIO()
    torch.save(norm.state_dict(), buffer)
    buffer.seek(0)
    other = PSPNorm2d(3, affine=False)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(other.running_sq_mean, norm.running_sq_mean)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_uses_float32_statistics(dtype):
    norm = PSPNorm2d(2)
    p = (torch.randn(4, 2, 3, 3) * 300).to(dtype)  # p^2 overflows float16 if squared there
    y = norm(p)
    assert y.dtype == dtype and torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), norm(p.float()), rtol=1e-2, atol=1e-2)
    assert norm.running_sq_mean.dtype == torch.float32


@pytest.mark.parametrize(
    "cls,shape,match",
    [
        (PSPNorm2d, (4, 3, 5), r"PSPNorm2d expects input of shape \[B, C, H, W\]"),
        (PSPNorm1d, (4, 3, 2, 2), r"PSPNorm1d expects input of shape \[B, C\] or \[B, C, L\]"),
        (PSPNorm, (4,), r"PSPNorm expects input of shape \[B, C, \*\]"),
        (PSPNorm2d, (4, 5, 2, 2), r"PSPNorm2d\(3\) expects 3 channels in dim 1, got 5"),
    ],
)
def test_wrong_rank_or_channels(cls, shape, match):
    with pytest.raises(ShapeError, match=match):
        cls(3)(torch.randn(shape))


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"num_features": 0}, "num_features"),
        ({"num_features": 2.5}, "num_features"),
        ({"num_features": 3, "eps": 0.0}, "eps"),
        ({"num_features": 3, "momentum": 1.5}, "momentum"),
        ({"num_features": 3, "momentum": "0.1"}, "momentum"),
        ({"num_features": 3, "affine": 1}, "affine"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        PSPNorm(**kwargs)
