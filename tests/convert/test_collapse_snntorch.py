"""snnTorch collapse: first-step parity with snnTorch's own neurons, nets, refusals, training."""

from __future__ import annotations

import copy

import pytest
import snntorch as snn
import snntorch.utils
import torch
from torch import nn

import snn_singlestep as ss
from snn_singlestep import ConversionError, S2Neuron, ShapeError, SingleStepWarning
from snn_singlestep.core import S2Surrogate
from snn_singlestep.snntorch import rules as sc

F = 37  # features of the test inputs


@pytest.fixture(autouse=True)
def _restore_snntorch_instances():
    # snnTorch keeps every neuron ever built in a class-level list that
    # snntorch.utils.reset walks; a DeltaLeaky there (its mem is None) breaks every later
    # reset, so each test leaves the list as it found it.
    saved = list(snn.SpikingNeuron.instances)
    yield
    snn.SpikingNeuron.instances[:] = saved


# (id, factory(init_hidden) -> source neuron, collapsed class)
NEURONS = [
    ("leaky", lambda ih: snn.Leaky(beta=0.9, init_hidden=ih), sc.CollapsedLeaky),
    (
        "leaky-zero-theta0.7",
        lambda ih: snn.Leaky(beta=0.5, threshold=0.7, reset_mechanism="zero", init_hidden=ih),
        sc.CollapsedLeaky,
    ),
    (
        "leaky-none",
        lambda ih: snn.Leaky(beta=0.5, reset_mechanism="none", init_hidden=ih),
        sc.CollapsedLeaky,
    ),
    (
        "leaky-nodelay-sub",
        lambda ih: snn.Leaky(beta=0.9, reset_delay=False, init_hidden=ih),
        sc.CollapsedLeaky,
    ),
    (
        "leaky-nodelay-zero",
        lambda ih: snn.Leaky(beta=0.9, reset_delay=False, reset_mechanism="zero", init_hidden=ih),
        sc.CollapsedLeaky,
    ),
    (
        "leaky-learn-graded",
        lambda ih: snn.Leaky(
            beta=0.9,
            learn_threshold=True,
            learn_beta=True,
            graded_spikes_factor=2.0,
            learn_graded_spikes_factor=True,
            init_hidden=ih,
        ),
        sc.CollapsedLeaky,
    ),
    (
        "leaky-per-feature-threshold",
        lambda ih: snn.Leaky(beta=0.9, threshold=torch.linspace(0.2, 2.0, F), init_hidden=ih),
        sc.CollapsedLeaky,
    ),
    (
        "leaky-inhibition",
        lambda ih: snn.Leaky(beta=0.9, inhibition=True, init_hidden=ih),
        sc.CollapsedLeaky,
    ),
    (
        "leaky-state-quant",
        # threshold between quantization levels: quantized membranes never tie with it
        lambda ih: snn.Leaky(
            beta=0.9, threshold=1.1, state_quant=lambda v: torch.round(v * 4) / 4, init_hidden=ih
        ),
        sc.CollapsedLeaky,
    ),
    (
        "synaptic",
        lambda ih: snn.Synaptic(alpha=0.8, beta=0.9, init_hidden=ih),
        sc.CollapsedSynaptic,
    ),
    (
        "synaptic-nodelay-zero",
        lambda ih: snn.Synaptic(
            alpha=0.8, beta=0.9, reset_delay=False, reset_mechanism="zero", init_hidden=ih
        ),
        sc.CollapsedSynaptic,
    ),
    (
        "rleaky-linear",
        lambda ih: snn.RLeaky(beta=0.9, linear_features=F, init_hidden=ih),
        sc.CollapsedRLeaky,
    ),
    (
        "rleaky-one-to-one",
        lambda ih: snn.RLeaky(beta=0.9, all_to_all=False, V=0.5, init_hidden=ih),
        sc.CollapsedRLeaky,
    ),
    (
        "rsynaptic-linear",
        lambda ih: snn.RSynaptic(alpha=0.8, beta=0.9, linear_features=F, init_hidden=ih),
        sc.CollapsedRSynaptic,
    ),
    (
        "rsynaptic-one-to-one",
        lambda ih: snn.RSynaptic(
            alpha=0.8, beta=0.9, all_to_all=False, learn_recurrent=False, init_hidden=ih
        ),
        sc.CollapsedRSynaptic,
    ),
    ("lapicque-beta", lambda ih: snn.Lapicque(beta=0.3, init_hidden=ih), sc.CollapsedLapicque),
    (
        "lapicque-RC",
        lambda ih: snn.Lapicque(R=2.0, C=0.5, time_step=0.3, init_hidden=ih),
        sc.CollapsedLapicque,
    ),
]


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("init_hidden", [False, True], ids=["explicit-state", "init_hidden"])
@pytest.mark.parametrize("make,cls", [n[1:] for n in NEURONS], ids=[n[0] for n in NEURONS])
def test_first_step_parity(make, cls, init_hidden):
    """Spikes and returned states equal snnTorch's own neuron run for one step from reset."""
    src = make(init_hidden)
    x = torch.randn(400, F) * 2
    net = ss.snntorch.collapse(nn.Sequential(copy.deepcopy(src)))
    assert type(net[0]) is cls and isinstance(net[0], S2Neuron)
    ref = _as_tuple(src(x))
    out = _as_tuple(net(x))
    assert len(out) == len(ref)
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r.to(o.dtype), rtol=0, atol=0)
    assert 0 < float((out[0] != 0).float().mean()) < 1  # the comparison is not vacuous
    # same state_dict keys: a checkpoint of the source loads strictly
    assert set(net[0].state_dict()) == set(src.state_dict())
    net[0].load_state_dict(src.state_dict(), strict=True)


@pytest.mark.parametrize("output", [True, False])
@pytest.mark.parametrize(
    "make",
    [
        lambda o: snn.StateLeaky(beta=0.9, channels=F, output=o),
        lambda o: snn.LinearLeaky(beta=0.9, in_features=F, out_features=11, output=o),
    ],
    ids=["StateLeaky", "LinearLeaky"],
)
def test_state_leaky_parity(make, output):
    """StateLeaky's first step is e^0·I: the [1, B, C] layout is kept, [B, C] works too."""
    src = make(output)
    net = ss.snntorch.collapse(nn.Sequential(copy.deepcopy(src)))
    x = torch.randn(1, 300, F) * 2
    for r, o in zip(_as_tuple(src(x)), _as_tuple(net(x))):
        torch.testing.assert_close(o, r, rtol=0, atol=0)
    for r, o in zip(_as_tuple(src(x)), _as_tuple(net(x[0]))):
        torch.testing.assert_close(o, r[0], rtol=0, atol=0)
    assert set(net[0].state_dict()) == set(src.state_dict())
    with pytest.raises(ShapeError, match="single-step"):
        net(torch.randn(4, 3, F))


def test_graded_spikes_state_leaky_squared():
    """StateLeaky multiplies by graded_spikes_factor twice (fire() and forward); so do we."""
    src = snn.StateLeaky(beta=0.9, channels=5, graded_spikes_factor=3.0)
    net = ss.snntorch.collapse(nn.Sequential(copy.deepcopy(src)))
    x = torch.full((1, 2, 5), 2.0)
    assert torch.equal(net(x)[0], src(x)[0])
    assert float(net(x)[0].max()) == 9.0


def test_tie_rule_differs_only_at_equality():
    """snnTorch fires on mem > θ, the single-step neuron on mem ≥ θ (documented)."""
    src = snn.Leaky(beta=0.9, threshold=1.0)
    net = ss.snntorch.collapse(nn.Sequential(copy.deepcopy(src)))
    x = torch.tensor([[0.5, 1.0, 1.5]])
    assert src(x)[0].tolist() == [[0.0, 0.0, 1.0]]
    assert net(x)[0].tolist() == [[0.0, 1.0, 1.0]]


class TutorialNet(nn.Module):
    """snnTorch tutorial style: neurons as attributes, explicit membrane loop."""

    def __init__(self, num_steps: int):
        super().__init__()
        self.num_steps = num_steps
        self.fc1 = nn.Linear(20, 30)
        self.lif1 = snn.Leaky(beta=0.9)
        self.fc2 = nn.Linear(30, 5)
        self.lif2 = snn.Synaptic(alpha=0.7, beta=0.9)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        syn2, mem2 = self.lif2.init_synaptic()
        spk_rec, mem_rec = [], []
        for _ in range(self.num_steps):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, syn2, mem2 = self.lif2(self.fc2(spk1), syn2, mem2)
            spk_rec.append(spk2)
            mem_rec.append(mem2)
        return torch.stack(spk_rec), torch.stack(mem_rec)


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(20, 30), snn.Leaky(beta=0.9, init_hidden=True))
        self.head = nn.ModuleDict(
            {
                "fc": nn.Linear(30, 5),
                "lif": snn.RLeaky(beta=0.9, linear_features=5, init_hidden=True, output=True),
            }
        )

    def forward(self, x):
        spk, mem = self.head["lif"](self.head["fc"](self.block(x)))
        return spk, mem


def test_user_class_with_explicit_state_loop():
    torch.manual_seed(1)
    src = TutorialNet(num_steps=1)
    x = torch.randn(64, 20) * 2
    net = ss.snntorch.collapse(src)
    for r, o in zip(src(x), net(x)):
        torch.testing.assert_close(o, r, rtol=0, atol=0)
    assert isinstance(net.lif1, sc.CollapsedLeaky) and isinstance(net.lif2, sc.CollapsedSynaptic)
    # the forward loop is the user's: with num_steps=4 each step is the same first step
    net.num_steps = 4
    spk, _ = net(x)
    assert spk.shape[0] == 4 and all(torch.equal(spk[0], s) for s in spk)


def test_nested_modules_and_sequential_init_hidden():
    torch.manual_seed(2)
    src = Nested()
    x = torch.randn(32, 20) * 2
    snntorch.utils.reset(src)
    ref = src(x)  # src now holds hidden state inside the autograd graph: still copyable
    net, report = ss.snntorch.collapse(src, return_report=True)
    for r, o in zip(ref, net(x)):
        torch.testing.assert_close(o, r, rtol=0, atol=0)
    assert [(e.path, e.source.rsplit(".", 1)[1]) for e in report.replaced] == [
        ("block.1", "Leaky"),
        ("head.lif", "RLeaky"),
    ]
    assert not report.unconverted


def test_input_net_untouched_unless_inplace():
    src = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True))
    before = {k: v.clone() for k, v in src.state_dict().items()}
    net = ss.snntorch.collapse(src)
    assert net is not src and type(src[1]) is snn.Leaky
    assert all(torch.equal(before[k], v) for k, v in src.state_dict().items())
    assert net[0].weight is not src[0].weight
    same = ss.snntorch.collapse(src, inplace=True)
    assert same is src and isinstance(src[1], sc.CollapsedLeaky)


def test_report_lists_replacements_and_prints(capsys):
    src = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True, learn_beta=True))
    _, report = ss.snntorch.collapse(src, return_report=True, verbose=True)
    printed = capsys.readouterr().out
    assert "replaced" in printed and "snntorch._neurons.leaky.Leaky" in printed
    assert report.replaced[0].target.endswith("CollapsedLeaky")
    assert any("learn_beta dropped" in n for n in report.notes)


def test_alpha_refused_in_exact_mode_with_path_and_class():
    src = nn.Sequential(
        nn.Linear(4, 3), nn.Sequential(snn.Alpha(alpha=0.9, beta=0.8, init_hidden=True))
    )
    with pytest.raises(
        ConversionError, match=r"1\.0 \(snntorch\._neurons\.alpha\.Alpha\).*cannot spike"
    ):
        ss.snntorch.collapse(src)
    # the source really is silent on its first step
    assert float(snn.Alpha(alpha=0.9, beta=0.8)(torch.randn(100, 4) * 10)[0].sum()) == 0.0


def _spike_counts(net: nn.Module, paths, run) -> dict:
    """Per neuron path: (spikes per channel [C], samples per channel), recorded by forward
    hooks on what the modules actually return while ``run()`` runs (all calls summed)."""
    counts = {}

    def hook(module, inputs, output, path):
        spk = output[0] if isinstance(output, tuple) else output
        fired = (spk.detach() != 0).double()
        fired = fired.reshape(-1, fired.shape[-1])  # [B (x steps), C]
        old_sum, old_n = counts.get(path, (0.0, 0))
        counts[path] = (old_sum + fired.sum(0), old_n + fired.shape[0])

    handles = [
        net.get_submodule(p).register_forward_hook(lambda m, i, o, p=p: hook(m, i, o, p))
        for p in paths
    ]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return counts


def _multi_step_rates(src: nn.Module, x: torch.Tensor, T: int, paths) -> dict:
    """The source snnTorch net run for T steps from reset on x; per path (sum [C], n)."""
    ref = copy.deepcopy(src).eval()

    def run():
        snntorch.utils.reset(ref)
        for _ in range(T):
            ref(x)

    return _spike_counts(ref, paths, run)


def _single_step_rates(net: nn.Module, x: torch.Tensor, paths) -> dict:
    net.eval()
    return _spike_counts(net, paths, lambda: net(x))


def test_alpha_converted_in_calibrated_mode():
    torch.manual_seed(3)
    T = 6
    src = nn.Sequential(nn.Linear(6, 8), snn.Alpha(alpha=0.9, beta=0.8, init_hidden=True))
    x = torch.rand(64, 6) * 4
    target_sum, target_n = _multi_step_rates(src, x, T, ["1"])["1"]
    target = float(target_sum.sum() / (target_n * 8))
    net, report = ss.snntorch.collapse(src, mode="calibrated", data=[x], T=T, return_report=True)
    assert isinstance(net[1], sc.CollapsedAlpha)
    assert "not first-step exact" in report.replaced[0].detail
    cal = report.calibration[0]
    assert cal.target_rate > 0 and abs(cal.rate_after - cal.target_rate) < 0.02
    # The spikes the calibrated neuron really emits on the calibration data (hooked, not the
    # report's own bookkeeping) fire at the multi-step rate measured independently above:
    # exactly round(r N) of the N membranes reach the calibrated threshold.
    got_sum, got_n = _single_step_rates(net, x, ["1"])["1"]
    measured = float(got_sum.sum() / (got_n * 8))
    assert 0 < target < 1 and cal.target_rate == pytest.approx(target, abs=1e-9)
    assert abs(measured - target) <= 1 / (2 * 64 * 8) + 1e-9, (measured, target)
    assert measured == pytest.approx(cal.rate_after, abs=1e-9)


@pytest.mark.parametrize(
    "make",
    [
        lambda: snn.Leaky(beta=0.9, init_hidden=True),
        lambda: snn.Synaptic(alpha=0.8, beta=0.9, init_hidden=True),
        lambda: snn.RLeaky(beta=0.9, linear_features=12, init_hidden=True),
    ],
    ids=["Leaky", "Synaptic", "RLeaky"],
)
def test_calibrated_snntorch_neurons_fire_at_the_multi_step_rates_per_channel(make):
    # One neuron layer on real-valued input: its 96 membranes per channel are distinct, so
    # calibration can make exactly round(r·96) of them fire (spiking inputs would tie).
    torch.manual_seed(5)
    T = 5
    src = nn.Sequential(nn.Linear(10, 12), make())
    with torch.no_grad():
        src[0].weight.mul_(3.0)
    x = torch.rand(96, 10)
    t_sum, t_n = _multi_step_rates(src, x, T, ["1"])["1"]
    net = ss.snntorch.collapse(src, mode="calibrated", data=[x[:48], x[48:]], T=T,
                               granularity="channel")
    g_sum, g_n = _single_step_rates(net, x, ["1"])["1"]
    e_sum, e_n = _single_step_rates(ss.snntorch.collapse(src), x, ["1"])["1"]
    assert g_n == e_n == 96 and t_n == T * 96
    want, have, exact = t_sum / t_n, g_sum / g_n, e_sum / e_n
    assert 0.1 < float(want.mean()) < 0.9
    torch.testing.assert_close(have, want, rtol=0, atol=1 / (2 * 96) + 1e-9)
    # not vacuous: the uncalibrated first step fires at other rates, so the match above
    # comes from the thresholds calibration set
    assert float((exact - want).abs().max()) > 0.05


@pytest.mark.parametrize(
    "module,match",
    [
        (lambda: snn.DeltaLeaky(beta=0.9, init_hidden=True), "two thresholds"),
        (lambda: snn.SLSTM(4, 4, init_hidden=True), "LSTM cell"),
        (lambda: snn.SConv2dLSTM(1, 2, 3, init_hidden=True), "LSTM cell"),
        (lambda: snn.LeakyParallel(4, 4), "nn.RNN layer"),
        (lambda: snn.Leaky(beta=0.9, threshold=-0.5, init_hidden=True), "threshold < 0"),
    ],
    ids=["DeltaLeaky", "SLSTM", "SConv2dLSTM", "LeakyParallel", "negative-threshold"],
)
def test_refusals_name_the_module(module, match):
    src = nn.Sequential(nn.Linear(4, 4), module())
    with pytest.raises(ConversionError, match=match) as info:
        ss.snntorch.collapse(src)
    assert "  1 (snntorch." in str(info.value)
    assert info.value.report.unconverted[0].path == "1"


def test_errors_keep_leaves_module_and_warns():
    src = nn.Sequential(
        nn.Linear(4, 4), snn.Leaky(beta=0.9, init_hidden=True), snn.SLSTM(4, 4, init_hidden=True)
    )
    with pytest.warns(SingleStepWarning, match="left 1 module"):
        net, report = ss.snntorch.collapse(src, errors="keep", return_report=True)
    assert isinstance(net[1], sc.CollapsedLeaky) and type(net[2]) is snn.SLSTM
    assert [e.path for e in report.unconverted] == ["2"]


class MyLeaky(snn.Leaky):
    """A user subclass whose first step differs from Leaky's."""

    def forward(self, input_, mem=None):
        return super().forward(2 * input_, mem)


class MyNeuron(snn.SpikingNeuron):
    def forward(self, x):
        return self.fire(x)


def test_unknown_and_overriding_subclasses_point_to_register_rule():
    for cls, kwargs in ((MyLeaky, {"beta": 0.9}), (MyNeuron, {})):
        src = nn.Sequential(nn.Linear(3, 3), cls(**kwargs))
        with pytest.raises(
            ConversionError, match=rf"unknown snnTorch neuron {cls.__name__}.*register_rule"
        ):
            ss.snntorch.collapse(src)


def test_register_rule_extends_the_table():
    def rule(m):
        new = S2Neuron(beta=m.beta, threshold=m.threshold / 2)  # v = 2I ≥ θ  ⇔  I ≥ θ/2
        return new

    ss.register_rule(MyLeaky, rule, note="v₁ = 2I")
    try:
        src = MyLeaky(beta=0.9)
        x = torch.randn(200, 5)
        net, report = ss.snntorch.collapse(nn.Sequential(copy.deepcopy(src)), return_report=True)
        assert torch.equal(net(x)[0], src(x)[0])
        assert report.replaced[0].detail == "v₁ = 2I"
        assert any(r.source is MyLeaky for r in ss.list_rules("user"))
    finally:
        ss.unregister_rule(MyLeaky)


def test_no_neuron_warns_and_returns_net_unchanged():
    src = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    with pytest.warns(SingleStepWarning, match="no spiking neuron"):
        out = ss.snntorch.collapse(src)
    assert out is src


@pytest.mark.parametrize("bad", [None, 3, "net", [nn.Linear(2, 2)], snn.Leaky])
def test_non_module_argument_is_an_error(bad):
    with pytest.raises(ConversionError, match="expects a torch.nn.Module"):
        ss.snntorch.collapse(bad)
    with pytest.raises(TypeError):
        ss.collapse(bad)


def test_already_single_step_neurons_are_kept():
    src = nn.Sequential(
        nn.Linear(3, 3), S2Neuron(init_hidden=True), snn.Leaky(beta=0.5, init_hidden=True)
    )
    net, report = ss.snntorch.collapse(src, return_report=True)
    assert [e.action for e in report.entries] == ["kept", "replaced"]
    assert type(net[1]) is S2Neuron


def test_training_after_collapse():
    """Gradients reach every converted neuron through the S² surrogate; thresholds learn."""
    torch.manual_seed(4)
    src = nn.Sequential(
        nn.Linear(10, 16),
        snn.Leaky(beta=0.9, init_hidden=True, learn_threshold=True),
        nn.Linear(16, 16),
        snn.RLeaky(beta=0.9, linear_features=16, init_hidden=True),
        nn.Linear(16, 16),
        snn.Synaptic(alpha=0.8, beta=0.9, init_hidden=True),
        nn.Linear(16, 3),
    )
    net = ss.snntorch.collapse(src)
    seen = {}
    for i in (1, 3, 5):
        assert isinstance(net[i].spike_grad, S2Surrogate)
        net[i].register_full_backward_hook(lambda m, gi, go, i=i: seen.__setitem__(i, gi[0]))
    x = torch.randn(64, 10) * 2
    net(x).pow(2).mean().backward()
    for i in (1, 3, 5):
        assert seen[i] is not None and float(seen[i].abs().sum()) > 0, i
    assert isinstance(net[1].threshold, nn.Parameter) and float(net[1].threshold.grad.abs()) > 0
    assert float(net[3].recurrent.bias.grad.abs().sum()) > 0  # V(0) = recurrent bias is learnt
    assert "beta" not in dict(net.named_parameters())
    snntorch.utils.reset(net)  # still works on the converted net
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    opt.step()


def test_half_precision_and_meta_device():
    src = nn.Sequential(nn.Linear(8, 8), snn.Leaky(beta=0.9, init_hidden=True))
    half = ss.snntorch.collapse(copy.deepcopy(src).to(torch.bfloat16))
    x = torch.randn(16, 8, dtype=torch.bfloat16) * 2
    out = half(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out.float(), (half[0](x) >= 1.0).float())
    # snnTorch neurons cannot be built under torch.device("meta"); move a built net there
    meta_src = nn.Sequential(nn.Linear(8, 8), snn.Leaky(beta=0.9, init_hidden=True)).to("meta")
    meta = ss.snntorch.collapse(meta_src)
    assert meta[1].threshold.device.type == "meta"
    assert set(meta.state_dict()) == set(meta_src.state_dict())
    assert meta(torch.empty(2, 8, device="meta")).device.type == "meta"
