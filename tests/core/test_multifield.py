"""MultiFieldBlock: fields, the LIF carried over fields, projections, gradients, errors.

Oracles: plain Python loops over fields for the LIF; hand-computed projection values;
explicit slicing for the windows.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from snn_singlestep.core.multifield import (
    MultiFieldBlock,
    RectangularSurrogate,
    corner_offsets,
    extract_fields,
    fold_projection,
    mean_projection,
    multifield_lif,
    paper_projection,
    rectangular_grad,
    sliding_offsets,
)
from snn_singlestep.core.surrogate import s2_grad
from snn_singlestep.errors import ConfigError, ShapeError


def identity_block(**kwargs) -> MultiFieldBlock:
    return MultiFieldBlock(nn.Identity(), **kwargs)


# --- fields and shapes --------------------------------------------------------------------


def test_default_fields_are_the_four_half_size_corners():
    x = torch.arange(64.0).view(1, 1, 8, 8)
    block = identity_block(projection=lambda s: s[0])
    window, offsets = block.offsets(8, 8)
    assert window == (4, 4) and offsets == [(0, 0), (0, 4), (4, 0), (4, 4)]
    fields = extract_fields(x, window, offsets)
    torch.testing.assert_close(fields[1, 0, 0], x[0, 0, 0:4, 4:8])
    torch.testing.assert_close(fields[2, 0, 0], x[0, 0, 4:8, 0:4])


def test_odd_maps_overlap_and_sliding_windows_are_raster_ordered():
    assert corner_offsets(5, 7, (3, 4)) == [(0, 0), (0, 3), (2, 0), (2, 3)]
    assert sliding_offsets(5, 5, (3, 3), (1, 2)) == [
        (0, 0), (0, 2), (1, 0), (1, 2), (2, 0), (2, 2)]


@pytest.mark.parametrize(
    "kwargs, out_shape",
    [({}, (2, 4, 4, 4)), ({"window": 6}, (2, 4, 6, 6)), ({"window": (5, 3)}, (2, 4, 5, 3)),
     ({"window": 4, "stride": 2}, (2, 4, 4, 4))],
)
def test_output_shape_is_one_window_through_the_module(kwargs, out_shape):
    block = MultiFieldBlock(nn.Conv2d(3, 4, 3, padding=1), **kwargs)
    assert block(torch.rand(2, 3, 8, 8)).shape == out_shape


def test_number_of_fields_follows_the_stride():
    block = identity_block(window=4, stride=2)
    _, spikes = block.forward_with_spikes(torch.rand(2, 1, 8, 8))
    assert spikes.shape == (9, 2, 1, 4, 4)


def test_linear_module_on_flattened_windows():
    block = MultiFieldBlock(nn.Sequential(nn.Flatten(), nn.Linear(16, 5)), projection="mean")
    assert block(torch.rand(3, 1, 8, 8)).shape == (3, 5)


def test_time_major_input_is_each_step_on_its_own():
    torch.manual_seed(0)
    block = MultiFieldBlock(nn.Conv2d(1, 2, 3, padding=1), window=6)
    x = torch.rand(3, 2, 1, 8, 8)
    out = block(x)
    assert out.shape == (3, 2, 2, 6, 6)
    torch.testing.assert_close(out, torch.stack([block(x[t]) for t in range(3)]))


def test_no_state_between_calls_and_torch_save_roundtrip():
    block = MultiFieldBlock(nn.Conv2d(1, 2, 3, padding=1))
    x = torch.rand(2, 1, 8, 8)
    first = block(x)
    block(torch.rand(5, 1, 8, 8))
    assert torch.equal(block(x), first)
    buffer = io.BytesIO()
    torch.save(block, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.load(buffer, weights_only=False)(x), first)


# --- the neuron over fields ---------------------------------------------------------------


def lif_loop(currents: list[float], decay: float, theta: float, recurrent: bool) -> list[float]:
    u, s, out = 0.0, 0.0, []
    for i in currents:
        u = decay * u * (1 - s) + i if recurrent else i
        s = 1.0 if u >= theta else 0.0
        out.append(s)
    return out


@given(
    currents=st.lists(st.floats(-2, 2, allow_nan=False), min_size=1, max_size=9),
    decay=st.floats(0.0, 1.0),
    theta=st.floats(-0.5, 1.5),
    recurrent=st.booleans(),
)
def test_lif_over_fields_matches_a_plain_loop(currents, decay, theta, recurrent):
    x = torch.tensor(currents, dtype=torch.float64).view(-1, 1)
    spikes, _ = multifield_lif(x, decay, theta, recurrent=recurrent)
    assert spikes.flatten().tolist() == lif_loop(currents, decay, theta, recurrent)


def test_carried_membrane_changes_the_output():
    # each field gives current 0.4 < θ = 0.5: alone none fires;
    # carried, 0.4·0.4 + 0.4 = 0.56 fires
    x = torch.full((1, 1, 4, 4), 0.4)
    carried = identity_block(window=2, stride=2, projection="mean")
    independent = identity_block(window=2, stride=2, projection="mean", recurrent=False)
    _, spikes = carried.forward_with_spikes(x)
    assert spikes[:, 0, 0, 0, 0].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert independent(x).sum().item() == 0.0
    assert not torch.equal(carried(x), independent(x))


@pytest.mark.parametrize("projection", ["paper", "mean"])
def test_gradients_reach_decay_threshold_and_module(projection):
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 3, 3, padding=1)
    nn.init.constant_(conv.bias, 0.5)  # about half the units fire, on every field
    block = MultiFieldBlock(conv, window=6, projection=projection)
    block(torch.rand(4, 1, 8, 8)).sum().backward()
    assert block.decay.grad is not None and block.decay.grad.item() != 0
    assert block.threshold.grad is not None and block.threshold.grad.item() != 0
    assert block.module.weight.grad.abs().sum() > 0


def test_paper_fold_passes_no_gradient_past_a_silent_first_field():
    # P(0, c) = 0 and ∂P/∂c2 = 0 at c1 = 0: a unit whose first field is silent gives its
    # later fields (and λ) no gradient (documented in fold_projection)
    x = torch.tensor([[[[0.1, 0.9], [0.9, 0.9]]]])  # field 1 (top-left) below θ = 0.5
    block = identity_block(window=1, stride=1, projection="paper")
    block(x).sum().backward()
    assert block.decay.grad.item() == 0.0
    mean_block = identity_block(window=1, stride=1, projection="mean")
    mean_block(x).sum().backward()
    assert mean_block.decay.grad.item() != 0.0


def test_threshold_gradient_is_minus_the_surrogate():
    x = torch.tensor([[[[0.3, 0.9], [0.5, 0.1]]]])  # four 1×1 fields
    block = identity_block(window=1, stride=1, projection=lambda s: s.sum(0), recurrent=False)
    block(x).sum().backward()
    expected = -s2_grad(x.flatten() - 0.5).sum()
    torch.testing.assert_close(block.threshold.grad, expected)


def test_fixed_decay_and_threshold_are_buffers():
    block = identity_block(learn_decay=False, learn_threshold=False)
    assert dict(block.named_parameters()) == {}
    assert set(dict(block.named_buffers())) == {"decay", "threshold"}


def test_rectangular_surrogate_is_the_papers_window():
    x = torch.tensor([-0.6, -0.4, 0.0, 0.4, 0.6], requires_grad=True)
    RectangularSurrogate()(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    torch.testing.assert_close(rectangular_grad(x.detach(), 2.0), torch.full((5,), 0.5))
    block = identity_block(surrogate="rectangular", window=1, stride=1, recurrent=False,
                           projection=lambda s: s.sum(0))
    u = torch.tensor([[[[0.2, 0.9]]]], requires_grad=True)
    block(u).sum().backward()
    assert u.grad.flatten().tolist() == [1.0, 1.0]  # |0.2 − 0.5| and |0.9 − 0.5| < 0.5


# --- projections ----------------------------------------------------------------------------


def test_paper_projection_hand_values():
    c1 = torch.tensor([0.0, 1.0, 1.0, 0.5, 2.0])
    c2 = torch.tensor([1.0, 0.0, 1.0, 0.5, 2.0])
    expected = [
        0.0,
        2 * math.sin(math.pi / 4),  # √2
        2 * math.sin(math.pi / 4 * math.cos(math.pi / 4)),  # 2 sin(π√2/8)
        2 * math.sin(math.pi / 8 * math.cos(math.pi / 8)),
        2 * math.sin(math.pi / 2 * math.cos(math.pi / 2)),  # cos(π/2) = 0
    ]
    torch.testing.assert_close(paper_projection(c1, c2), torch.tensor(expected), atol=1e-6, rtol=0)


def test_fold_over_fields_by_hand():
    s = torch.tensor([[1.0], [0.0], [1.0], [1.0]])
    p = lambda a, b: 2 * math.sin(math.pi / 4 * a * math.cos(math.pi / 4 * b))  # noqa: E731
    expected = p(p(p(1.0, 0.0), 1.0), 1.0)
    assert fold_projection(s).item() == pytest.approx(expected, abs=1e-6)
    assert mean_projection(s).item() == 0.75


def test_block_projection_choices():
    x = torch.full((1, 1, 4, 4), 0.6)  # every field fires on its own
    spikes = torch.ones(4)
    assert identity_block(projection="mean")(x).unique().tolist() == [1.0]
    assert identity_block(projection="paper")(x).unique().item() == pytest.approx(
        fold_projection(spikes).item())
    assert torch.equal(identity_block()(x), identity_block(projection="mean")(x))
    custom = identity_block(projection=lambda s: s.amax(0))
    assert custom(x).shape == (1, 1, 2, 2)


# --- errors -------------------------------------------------------------------------------


def test_window_larger_than_input_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"window 9×9 is larger than the input map 8×8"):
        identity_block(window=9)(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"window": 0}, "window"), ({"window": (2, 2, 2)}, "window"), ({"stride": -1}, "stride"),
     ({"window": 2.5}, "window"), ({"projection": "max"}, "projection"),
     ({"surrogate": "atan"}, "surrogate"), ({"decay": float("nan")}, "decay"),
     ({"recurrent": 1}, "recurrent")],
)
def test_bad_configuration_is_a_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        identity_block(**kwargs)


def test_module_must_be_a_module():
    with pytest.raises(ConfigError, match="nn.Module"):
        MultiFieldBlock(lambda x: x)


def test_projection_returning_the_wrong_shape_is_a_shape_error():
    block = identity_block(projection=lambda s: s)  # forgot to merge the fields
    with pytest.raises(ShapeError, match=r"projection callable.*\[K, N, \*\]"):
        block(torch.rand(2, 1, 4, 4))


@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8), (1, 1, 1, 1, 8, 8)])
def test_input_rank_is_checked(shape):
    with pytest.raises(ShapeError, match=r"\[N, C, H, W\]"):
        identity_block()(torch.rand(*shape))
