"""The fused paths of the single-step neuron (core/fused.py) and the lean eager backward.

Each fast path is checked bit for bit against the general one it replaces,
``spike_fn(v - threshold)`` through :class:`S2Spike` with the where-based backward formula.
"""

import itertools

import pytest
import torch
from torch import nn

from snn_singlestep.core import S2Cell, S2Surrogate, fused, heaviside, s2_spike
from snn_singlestep.core import surrogate as sg
from snn_singlestep.core.bitpack import BitPacker, spike_bits
from snn_singlestep.core.fused import S2Fire, fire, s2_params, spike_step
from snn_singlestep.errors import ConfigError, ShapeError

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
EDGES = [0.0, -0.0, 1.0, -1.0, -1.5, 1e-40, -1e-40, 3e38, -3e38, float("inf"), -float("inf")]


def _membrane(dtype, n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, generator=g, dtype=torch.float64) * 2 + 0.5
    v[:50] = 0.5  # exact ties with the threshold used below
    return torch.cat([v, torch.tensor(EDGES, dtype=torch.float64)]).to(dtype)


THRESHOLDS = {
    "float": lambda dt: 0.5,
    "0-d float64": lambda dt: torch.tensor(0.5, dtype=torch.float64),
    "0-d float32": lambda dt: torch.tensor(0.5),
    "per-feature float64": lambda dt: torch.tensor([0.5, -1e-40, 0.0], dtype=torch.float64),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("which", list(THRESHOLDS))
def test_spike_step_equals_heaviside_of_difference(dtype, which):
    theta = THRESHOLDS[which](dtype)
    v = _membrane(dtype)
    if which.startswith("per-feature"):
        v = v[: (v.numel() // 3) * 3].reshape(-1, 3)
    want = heaviside(v - theta)
    got = spike_step(v, theta)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got, want)


def test_spike_step_nan_membrane_does_not_fire():
    assert spike_step(torch.tensor([float("nan")]), 0.0).item() == 0.0


def test_s2_params_recognises_only_the_plain_s2_surrogate():
    assert s2_params(s2_spike) == (4.0, 1.0)
    assert s2_params(S2Surrogate(2.0, 0.5)) == (2.0, 0.5)
    assert s2_params(S2Surrogate(spiking=False)) is None
    assert s2_params(heaviside) is None

    class Sub(S2Surrogate):  # may override forward: keeps the generic path
        pass

    assert s2_params(Sub()) is None


def _general(v, theta, surrogate):
    """The path fire() replaces: the surrogate applied to v - threshold."""
    return surrogate(v - theta)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("learnable", [False, True], ids=["fixed", "learnable-alpha-beta"])
def test_fire_gradients_bitwise_equal_to_the_general_path(dtype, learnable):
    v0 = _membrane(dtype)[:-2]  # the infinities have NaN gradients for θ on both paths
    grad_out = torch.randn(v0.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    results = []
    for path in (_general, fire):
        surrogate = S2Surrogate(3.0, 0.7, learnable=learnable)
        v = v0.clone().requires_grad_()
        theta = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
        spikes = path(v, theta, surrogate)
        if path is fire:
            assert type(spikes.grad_fn).__name__ == "S2FireBackward"
        spikes.backward(grad_out)
        params = [p.grad for p in surrogate.parameters()]
        results.append((spikes, v.grad, theta.grad, *params))
    for want, got in zip(*results):
        assert want.dtype == got.dtype and torch.equal(want, got)


def test_fire_double_backward_equals_the_general_path():
    results = []
    for path in (_general, fire):
        v = torch.tensor([-0.7, 0.2, 0.9, 2.5], dtype=torch.float64, requires_grad=True)
        theta = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
        (gv,) = torch.autograd.grad(path(v, theta, S2Surrogate()).sum(), v, create_graph=True)
        gg = torch.autograd.grad(gv.pow(2).sum(), (v, theta))
        results.append((gv, *gg))
    for want, got in zip(*results):
        assert torch.equal(want, got)


def test_s2_fire_saves_the_membrane_not_a_difference():
    """The graph keeps v itself (the caller's tensor), not a new v - θ tensor."""
    v = torch.randn(64, 32, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        S2Fire.apply(v, torch.tensor(0.5, dtype=torch.float64), 4.0, 1.0)
    float_saved = [t for t in saved if t.numel() > 1]
    assert len(float_saved) == 1 and float_saved[0].data_ptr() == v.data_ptr()


def test_fire_without_graph_is_a_bare_comparison(monkeypatch):
    calls = []
    monkeypatch.setattr(S2Fire, "apply", lambda *a: calls.append(a) or S2Fire.apply(*a))
    v = torch.randn(10, requires_grad=True)
    with torch.no_grad():
        out = fire(v, 0.1, S2Surrogate())
    assert out.grad_fn is None and not calls
    assert torch.equal(out, heaviside(v.detach() - 0.1))


def test_fire_generic_spike_function_gets_the_difference():
    seen = []

    def spike_fn(x):
        seen.append(x)
        return (x > 0).float()

    v = torch.tensor([0.0, 1.0, 2.0])
    assert fire(v, 1.0, spike_fn).tolist() == [0.0, 0.0, 1.0]
    assert torch.equal(seen[0], v - 1.0)


def test_fire_refuses_a_threshold_that_does_not_broadcast():
    with pytest.raises(ShapeError, match=r"shape \(3,\).*shape \(4, 2\)"):
        fire(torch.zeros(4, 2), torch.zeros(3), S2Surrogate())
    with pytest.raises(ShapeError, match="does not broadcast"):
        fire(torch.zeros(4, 2, requires_grad=True), torch.zeros(3), S2Surrogate())


# --- lean eager backward ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "alpha, beta",
    [(4.0, 1.0), (2.0, 0.5), (3.3, 0.7), (1e4, 1e-4), (torch.tensor(3.0), torch.tensor(0.7))],
)
def test_lean_backward_equals_the_where_formula_bitwise(dtype, alpha, beta):
    x = _membrane(dtype) - 0.5
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(2)).to(dtype)
    want = sg._s2_backward(grad_out, x, alpha, beta)
    got = sg._s2_backward_lean(grad_out, x, alpha, beta)
    assert got.dtype == want.dtype and torch.equal(got, want)


def test_lerp_returns_an_end_exactly_at_weights_zero_and_one():
    """The lean backward relies on this (a torch kernel detail: pinned so an upgrade fails)."""
    g = torch.Generator().manual_seed(3)
    start, end = torch.randn(10_000, generator=g) * 1e3, torch.randn(10_000, generator=g) * 1e-3
    assert torch.equal(torch.lerp(start, end, torch.zeros(10_000)), start)
    assert torch.equal(torch.lerp(start, end, torch.ones(10_000)), end)


def test_first_order_backward_uses_the_lean_formula(monkeypatch):
    previous = sg.set_fused_backward("off")
    try:
        calls = []
        real = sg._s2_backward_lean
        monkeypatch.setattr(sg, "_s2_backward_lean", lambda *a: calls.append(1) or real(*a))
        x = torch.randn(20, requires_grad=True)
        s2_spike(x).sum().backward()
        assert calls == [1]
        torch.testing.assert_close(x.grad, sg.s2_grad(x.detach()), rtol=0, atol=0)
    finally:
        sg.set_fused_backward(previous)


# --- the neuron modules ----------------------------------------------------------------------


def _neurons(threshold: float = 0.5):
    """Factories of the three single-step neurons with the given threshold."""
    snn = pytest.importorskip("snn_singlestep.snntorch")
    sj = pytest.importorskip("snn_singlestep.spikingjelly")
    return {
        "S2Cell": lambda: S2Cell(threshold),
        "S2Neuron": lambda: snn.S2Neuron(threshold=threshold, init_hidden=True),
        "S2Node": lambda: sj.S2Node(v_threshold=threshold),
    }


@pytest.mark.parametrize("name", ["S2Cell", "S2Neuron", "S2Node"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_lean_inference_equals_the_training_path(name, dtype):
    neuron = _neurons()[name]().eval()
    v = _membrane(dtype).reshape(-1, 1)[:-1]
    with torch.no_grad():
        lean = neuron(v)
    full = neuron(v.clone().requires_grad_())
    assert lean.grad_fn is None and full.grad_fn is not None
    assert lean.dtype == full.dtype == dtype and torch.equal(lean, full.detach())
    assert torch.equal(lean, heaviside(v.double() - 0.5).to(dtype))  # v is exact in float64


@pytest.mark.parametrize("name", ["S2Cell", "S2Neuron", "S2Node"])
@pytest.mark.parametrize(
    "bad", [torch.tensor([1, 2]), torch.tensor([True]), torch.ones(2, dtype=torch.complex64)],
    ids=["int", "bool", "complex"],
)
def test_neurons_refuse_non_float_input_naming_it(name, bad):
    neuron = _neurons()[name]()
    with pytest.raises(ConfigError, match=rf"{name} input.*{bad.dtype}"):
        neuron(bad)


def test_s2neuron_graded_spikes_factor_still_applies():
    snn = pytest.importorskip("snn_singlestep.snntorch")
    neuron = snn.S2Neuron(threshold=0.5, init_hidden=True)
    x = torch.tensor([0.0, 1.0])
    assert neuron(x).tolist() == [0.0, 1.0]
    neuron.graded_spikes_factor.fill_(2.5)  # in place: the cached "gain is 1" must not stick
    assert neuron(x).tolist() == [0.0, 2.5]
    neuron.graded_spikes_factor = torch.tensor(1.0)
    assert neuron(x).tolist() == [0.0, 1.0]


# --- BatchNorm -> S2: the membrane recomputed in backward --------------------------------------



@pytest.fixture
def norm_mode():
    previous = fused.set_norm_recompute("auto")
    yield fused.set_norm_recompute
    fused.set_norm_recompute(previous)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", [(300, 77), (4, 13, 5, 5), (7, 9, 11)], ids=str)
def test_batchnorm_node_internals_and_bitwise_recompute(dtype, shape):
    """Pins the torch internals the recompute reads: the CPU BatchNorm node's name, its
    saved tensors, and that addcmul(b, x, a) reproduces the kernel's output bit for bit."""
    g = torch.Generator().manual_seed(4)
    bn = nn.BatchNorm1d(shape[1]) if len(shape) < 4 else nn.BatchNorm2d(shape[1])
    bn = bn.to(dtype)
    with torch.no_grad():
        bn.weight.uniform_(0.3, 2.0, generator=g)
        bn.bias.uniform_(-1.0, 1.0, generator=g)
    x = (torch.randn(shape, generator=g, dtype=dtype) * 3 + 1).requires_grad_()
    v = bn(x)
    assert type(v.grad_fn).__name__ == "NativeBatchNormBackward0"
    assert v.grad_fn._saved_input.data_ptr() == x.data_ptr()
    assert fused._recompute_is_exact("cpu", dtype)
    terms = fused.norm_terms(v)
    assert terms is not None and terms[0].data_ptr() == x.data_ptr()
    assert torch.equal(torch.addcmul(terms[2], terms[0], terms[1]), v)


def _bn_net(dtype, neuron=lambda: S2Cell(0.3), affine=True):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(12, 40), nn.BatchNorm1d(40, affine=affine), neuron(),
        nn.Linear(40, 24), nn.BatchNorm1d(24, affine=affine), neuron(), nn.Linear(24, 3),
    ).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_norm_recompute_gradients_equal_the_unfused_net_bitwise(norm_mode, dtype):
    x = torch.randn(33, 12, dtype=dtype, generator=torch.Generator().manual_seed(5))
    grads = []
    for mode in ("off", "on"):
        norm_mode(mode)
        net = _bn_net(dtype)
        net(x).pow(2).sum().backward()
        grads.append([p.grad for p in net.parameters()])
    for want, got in zip(*grads):
        assert torch.equal(want, got)


def _saved_storages(step, min_bytes: int = 33 * 24 * 4) -> set:
    seen = set()

    def pack(t):
        seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return {ptr for ptr, nbytes in seen if nbytes >= min_bytes}  # activations only


def test_norm_recompute_keeps_no_copy_of_the_membrane(norm_mode):
    x = torch.randn(33, 12)
    counts = {}
    for mode in ("off", "on"):
        norm_mode(mode)
        net = _bn_net(torch.float32)
        counts[mode] = len(_saved_storages(lambda net=net: net(x)))
    assert counts["on"] == counts["off"] - 2  # one membrane per hidden layer


@pytest.mark.parametrize("batch", [4, 819, 820, 1024])
def test_norm_recompute_auto_starts_at_32768_elements(norm_mode, batch):
    """"auto" keeps small membranes (cheaper to save) and recomputes from 32768 elements on
    (batch × 40: 819 × 40 = 32760 is saved, 820 × 40 = 32800 recomputed)."""
    net = _bn_net(torch.float32)
    spikes = net[:3](torch.randn(batch, 12))
    assert type(spikes.grad_fn).__name__ == "S2FireBackward"
    assert spikes.grad_fn.norm == (batch * 40 >= 1 << 15)  # the node is the ctx of S2Fire
    norm_mode("on")
    assert net[:3](torch.randn(batch, 12)).grad_fn.norm


@pytest.mark.parametrize("why", ["eval", "no affine", "frozen bias"])
def test_norm_recompute_falls_back_to_saving_v(norm_mode, why):
    net = _bn_net(torch.float32, affine=why != "no affine")
    if why == "eval":
        net.eval()
    if why == "frozen bias":
        net[1].bias.requires_grad_(False)
    bn_out = {}
    net[1].register_forward_hook(lambda m, i, o: bn_out.setdefault("v", o))
    spikes = net[:3](torch.randn(33, 12))
    assert fused.norm_terms(bn_out["v"]) is None
    assert type(spikes.grad_fn).__name__ == "S2FireBackward"


def test_norm_recompute_refuses_double_backward_and_off_allows_it(norm_mode):
    norm_mode("on")
    x = torch.randn(33, 12)
    net = _bn_net(torch.float64)
    with pytest.raises(ConfigError, match="set_norm_recompute"):
        torch.autograd.grad(net(x.double()).sum(), net[0].weight, create_graph=True)
    norm_mode("off")
    (g,) = torch.autograd.grad(net(x.double()).sum(), net[0].weight, create_graph=True)
    assert g.grad_fn is not None


def test_set_norm_recompute_validates(norm_mode):
    with pytest.raises(ConfigError, match="mode"):
        norm_mode("always")


# --- spikes saved as bits ----------------------------------------------------------------------



@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bitpacker_roundtrip_every_byte_pattern_and_odd_sizes(dtype):
    patterns = torch.tensor(list(itertools.product([0.0, 1.0], repeat=8)), dtype=dtype)
    packer = BitPacker()
    payload = packer.compress(patterns)
    # spike i of each group of 8 is bit i of its byte (the documented layout)
    want = [sum(int(b) << i for i, b in enumerate(row)) for row in patterns.tolist()]
    assert payload[0].tolist() == want
    odd = patterns.reshape(-1)[:2041].reshape(-1, 13)[:, :5]  # 785 values, not 8k
    for t in (patterns, odd, torch.ones(0, dtype=dtype)):
        t = t.contiguous()
        back = packer.decompress(packer.compress(t))
        assert back.dtype == t.dtype and back.shape == t.shape and torch.equal(back, t)


class _Counting(BitPacker):
    def __init__(self):
        self.shapes = []

    def compress(self, t):
        self.shapes.append(tuple(t.shape))
        return super().compress(t)


@pytest.mark.parametrize("name", ["S2Cell", "S2Neuron", "S2Node"])
def test_spike_bits_gradients_equal_and_spikes_packed_mlp(name):
    neuron = _neurons(0.3)[name]
    x = torch.randn(33, 12)
    net = _bn_net(torch.float32, neuron)
    net(x).pow(2).sum().backward()
    want = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    packer = _Counting()
    with spike_bits(packer):
        out = net(x)
    out.pow(2).sum().backward()
    assert packer.shapes == [(33, 40), (33, 24)]  # the inputs of the two Linears after spikes
    for w, p in zip(want, net.parameters()):
        assert torch.equal(w, p.grad)


def test_spike_bits_cnn_with_pooling_after_the_neuron():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), S2Cell(0.2),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    x = torch.randn(6, 1, 8, 8)
    net(x).sum().backward()
    want = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    packer = _Counting()
    with spike_bits(packer):
        out = net(x)
    out.sum().backward()
    assert (6, 4, 8, 8) in packer.shapes
    for w, p in zip(want, net.parameters()):
        assert torch.equal(w, p.grad)


def test_spike_bits_leaves_modified_spikes_and_other_tensors_alone():
    v = torch.randn(5, 8, requires_grad=True)
    w = torch.randn(8, 3, requires_grad=True)
    packer = _Counting()
    with spike_bits(packer):
        s = fire(v, 0.0, s2_spike)
        s2 = fire(v, 0.5, s2_spike)
        s2.mul_(3.0)  # no longer 0/1: must be saved as it is
        out = (s @ w).sum() + (s2 @ w).sum() + (v * v).sum()
    assert packer.shapes == [(5, 8)]
    out.backward()
    want = (s.detach().sum(0) + s2.detach().sum(0))[:, None].expand(8, 3)
    torch.testing.assert_close(w.grad, want)


def test_spike_bits_accepts_spikingjelly_packer():
    compress = pytest.importorskip("spikingjelly.activation_based.memopt.compress")
    x = torch.randn(33, 12)
    net = _bn_net(torch.float32)
    net(x).sum().backward()
    want = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    with spike_bits(compress.BitSpikeCompressor()):
        out = net(x)
    out.sum().backward()
    for w, p in zip(want, net.parameters()):
        assert torch.equal(w, p.grad)


def test_torch_func_grad_through_a_neuron_equals_autograd():
    """torch.func transforms need setup_context Functions: fire() then uses S2Spike."""
    cell = S2Cell(0.3)
    v = torch.randn(17, dtype=torch.float64)
    got = torch.func.grad(lambda u: (cell(u) * torch.arange(17.0, dtype=u.dtype)).sum())(v)
    u = v.clone().requires_grad_()
    (cell(u) * torch.arange(17.0, dtype=u.dtype)).sum().backward()
    assert torch.equal(got, u.grad)
