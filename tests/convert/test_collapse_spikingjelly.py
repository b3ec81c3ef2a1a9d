"""SpikingJelly collapse: parity with SpikingJelly's nodes; containers, shapes, training."""

from __future__ import annotations

import copy

import pytest
import torch
from spikingjelly.activation_based import base, functional, layer, neuron
from spikingjelly.activation_based.functional import net_config
from torch import nn

import snn_singlestep as ss
from snn_singlestep import ConversionError, S2Node, ShapeError, SingleStepWarning
from snn_singlestep.spikingjelly import ReducedS2
from snn_singlestep.spikingjelly import rules as jc

# (id, source factory, collapsed class): every BaseNode rule, with the formula it checks
NODES = [
    ("IF", lambda: neuron.IFNode(), jc.CollapsedIFNode),
    ("IF-soft-reset", lambda: neuron.IFNode(v_reset=None), jc.CollapsedIFNode),
    ("IF-v_reset0.3", lambda: neuron.IFNode(v_reset=0.3, v_threshold=0.7), jc.CollapsedIFNode),
    ("LIF", lambda: neuron.LIFNode(), jc.CollapsedLIFNode),
    ("LIF-tau3", lambda: neuron.LIFNode(tau=3.0), jc.CollapsedLIFNode),
    ("LIF-no-decay-input", lambda: neuron.LIFNode(tau=3.0, decay_input=False), jc.CollapsedLIFNode),
    ("LIF-v_reset0.2", lambda: neuron.LIFNode(tau=1.7, v_reset=0.2), jc.CollapsedLIFNode),
    (
        "LIF-soft-reset",
        lambda: neuron.LIFNode(tau=3.0, v_reset=None, v_threshold=0.5),
        jc.CollapsedLIFNode,
    ),
    ("PLIF", lambda: neuron.ParametricLIFNode(init_tau=2.5), jc.CollapsedParametricLIFNode),
    (
        "PLIF-no-decay-input",
        lambda: neuron.ParametricLIFNode(init_tau=3.0, decay_input=False, v_reset=-0.2),
        jc.CollapsedParametricLIFNode,
    ),
    ("QIF", lambda: neuron.QIFNode(), jc.CollapsedQIFNode),
    (
        "QIF-custom",
        lambda: neuron.QIFNode(tau=3.0, v_c=0.5, a0=2.0, v_rest=0.1, v_reset=-0.3),
        jc.CollapsedQIFNode,
    ),
    ("EIF", lambda: neuron.EIFNode(), jc.CollapsedEIFNode),
    ("Izhikevich", lambda: neuron.IzhikevichNode(), jc.CollapsedIzhikevichNode),
    (
        "Izhikevich-w_rest",
        lambda: neuron.IzhikevichNode(w_rest=0.3, v_rest=-0.2),
        jc.CollapsedIzhikevichNode,
    ),
    ("KLIF", lambda: neuron.KLIFNode(), jc.CollapsedKLIFNode),
    ("CUBALIF", lambda: neuron.CUBALIFNode(), jc.CollapsedCUBALIFNode),
    ("CUBALIF-v_reset", lambda: neuron.CUBALIFNode(v_reset=0.3), jc.CollapsedCUBALIFNode),
    ("CLIF", lambda: neuron.ComplementaryLIFNode(), jc.CollapsedIFNode),
    ("HalfThresholdIF", lambda: neuron.HalfThresholdIFNode(), jc.CollapsedIFNode),
    ("SimpleIF", lambda: neuron.SimpleIFNode(), jc.CollapsedIFNode),
    (
        "SimpleLIF",
        lambda: neuron.SimpleLIFNode(tau=2.0, decay_input=True, v_reset=0.1),
        jc.CollapsedSimpleLIFNode,
    ),
    (
        "SimpleLIF-no-decay-input",
        lambda: neuron.SimpleLIFNode(tau=3.0, decay_input=False, v_reset=0.1),
        jc.CollapsedSimpleLIFNode,
    ),
    ("OTTTLIF", lambda: neuron.OTTTLIFNode(), jc.CollapsedLIFNode),
    ("SLTTLIF", lambda: neuron.SLTTLIFNode(), jc.CollapsedLIFNode),
]


def _first_step(src: nn.Module, x: torch.Tensor, step_mode: str) -> torch.Tensor:
    """The source node run for one step from its reset state."""
    functional.reset_net(src)
    out = src(x.unsqueeze(0) if step_mode == "m" else x)
    if isinstance(out, list):  # OTTT in training: [spike, trace]
        out = out[0]
    functional.reset_net(src)
    return out[0] if step_mode == "m" else out


# OTTTLIFNode runs in step mode 's' only (its constructor asserts it)
PARITY = [
    pytest.param(make, cls, mode, id=f"{name}-{mode}")
    for name, make, cls in NODES
    for mode in ("s", "m")
    if not (name == "OTTTLIF" and mode == "m")
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("make,cls,step_mode", PARITY)
def test_first_step_parity(make, cls, step_mode, training):
    """Spike for spike equal to SpikingJelly's node run one step from reset (ties included)."""
    src = make()
    src.step_mode = step_mode
    src.train(training)
    net = ss.spikingjelly.collapse(nn.Sequential(copy.deepcopy(src)), input_ndim=None)
    node = net[0]
    assert type(node) is cls and isinstance(node, S2Node) and node.step_mode == "s"
    assert isinstance(node.surrogate_function, ReducedS2)
    net.train(training)
    x = torch.randn(300, 37) * 3
    # exact ties: inputs whose first-step membrane lands exactly on the threshold
    x[0, :8] = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, -1.0, 0.7, 0.4])
    ref = _first_step(src, x, step_mode)
    out = net(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert 0 < float(out.detach().mean()) < 1
    assert set(node.state_dict()) == set(src.state_dict())
    node.load_state_dict(src.state_dict(), strict=True)


def test_membrane_formulas_in_closed_form():
    """The docstring equations, evaluated by hand, against the converted nodes' membrane()."""
    x = torch.linspace(-2, 2, 9)
    tau, w = 3.0, 0.4
    q = torch.sigmoid(torch.tensor(w))
    cases = [
        (jc.CollapsedIFNode(v_reset=0.25), x + 0.25),
        (jc.CollapsedLIFNode(tau=tau, v_reset=0.25), 0.25 + x / tau),
        (jc.CollapsedLIFNode(tau=tau, decay_input=False, v_reset=0.25), 0.25 + x),
        (jc.CollapsedSimpleLIFNode(tau=tau, v_reset=0.1), (0.1 + x) / tau),
        (
            jc.CollapsedQIFNode(tau=tau, v_c=0.8, a0=1.0, v_rest=0.0, v_reset=-0.1),
            -0.1 + (x + (-0.1) * (-0.9)) / tau,
        ),
        (
            jc.CollapsedIzhikevichNode(
                tau=tau, v_c=0.8, a0=1.0, v_rest=-0.1, w_rest=0.2, v_reset=0.0
            ),
            (x + 0.1 * (-0.8) - 0.2) / tau,
        ),
    ]
    plif = jc.CollapsedParametricLIFNode(init_w=w)
    cases.append((plif, x * q))
    eif = jc.CollapsedEIFNode(tau=tau, delta_T=1.0, theta_rh=0.8, v_rest=0.0, v_reset=-0.1)
    cases.append((eif, -0.1 + (x + 0.0 + 0.1 + torch.exp(torch.tensor(-0.9))) / tau))
    for node, expected in cases:
        torch.testing.assert_close(node.membrane(x), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: neuron.TernaryIFNode(), "ternary spikes"),
        (lambda: neuron.ILIFNode(), "multi-level spike counts"),
        (lambda: neuron.LIAFNode(act=torch.relu, threshold_related=False), "analog activation"),
        (lambda: neuron.MPBNLIFNode(out_features=4), "BatchNorm"),
        (
            lambda: neuron.GatedLIFNode(T=4),
            "unknown SpikingJelly neuron GatedLIFNode.*register_rule",
        ),
    ],
    ids=["Ternary", "ILIF", "LIAF", "MPBN", "GatedLIF-unknown"],
)
def test_refusals_name_module_path_and_class(make, match):
    node = make()
    src = nn.Sequential(layer.Linear(4, 4), nn.Sequential(node))
    with pytest.raises(ConversionError, match=match) as info:
        ss.spikingjelly.collapse(src)
    assert f"  1.0 ({type(node).__module__}.{type(node).__name__})" in str(info.value)


class MyNode(neuron.BaseNode):
    """A BaseNode subclass the converter knows nothing about."""

    def single_step_functional_forward(self, inputs, states, **kwargs):
        v = states[0] + 2 * inputs[0]
        spike = self.surrogate_function(v - self.v_threshold)
        return (spike,), (v * (1 - spike),)


def test_unknown_basenode_points_to_register_rule():
    src = nn.Sequential(layer.Linear(3, 3), MyNode())
    with pytest.raises(
        ConversionError,
        match=r"1 \(.*MyNode\): unknown SpikingJelly neuron MyNode.*register_rule\(MyNode",
    ):
        ss.spikingjelly.collapse(src)

    def rule(m, ctx):
        """h₁ = 2x."""
        node = jc.CollapsedIFNode(v_threshold=m.v_threshold / 2, step_mode=ctx.step_mode)
        return node

    ss.register_rule(MyNode, rule)
    try:
        x = torch.randn(50, 3)
        net = ss.spikingjelly.collapse(copy.deepcopy(src), input_ndim=2)
        functional.reset_net(src)
        assert torch.equal(net(x), src(x))
    finally:
        ss.unregister_rule(MyNode)


class ConvNet(nn.Module):
    """A user class with every container kind and stateful layers."""

    def __init__(self):
        super().__init__()
        self.stem = layer.SeqToANNContainer(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.sn1 = neuron.LIFNode(tau=2.0, step_mode="m")
        self.block = layer.MultiStepContainer(nn.Conv2d(4, 4, 3, padding=1), neuron.IFNode())
        self.drop = layer.Dropout(0.5, step_mode="m")
        self.tdbn = layer.ThresholdDependentBatchNorm2d(num_features=4, alpha=1.0, v_th=1.0)
        self.head = layer.SeqToANNContainer(nn.Flatten(), nn.Linear(4 * 8 * 8, 3))

    def forward(self, x_seq):
        x = self.sn1(self.stem(x_seq))
        x = self.tdbn(self.drop(self.block(x)))
        return self.head(x)


class TLastNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = layer.TLastSeqToANNContainer(nn.Linear(6, 5))
        self.b = layer.TLastMultiStepContainer(neuron.IFNode())

    def forward(self, x):  # [B, F, T] multi-step, [B, F] single-step
        return self.b(self.a(x))


def test_containers_keep_keys_and_first_step():
    torch.manual_seed(0)
    src = ConvNet().eval()
    x = torch.rand(5, 1, 8, 8) * 4
    ref = src(x.unsqueeze(0))[0]
    keys = src.state_dict()
    # step_mode="auto" keeps a user's own forward as it is called: containers stay, [1, B, ...]
    kept = ss.spikingjelly.collapse(src).eval()
    assert type(kept.stem) is layer.SeqToANNContainer and kept.sn1.step_mode == "m"
    assert list(kept.state_dict()) == list(keys)
    torch.testing.assert_close(kept(x.unsqueeze(0))[0], ref, rtol=0, atol=0)
    # step_mode="s" (asked for): single-step layout, [B, ...] input
    net, report = ss.spikingjelly.collapse(src, step_mode="s", return_report=True)
    assert isinstance(net.stem, jc.SingleStepSequential) and isinstance(
        net.block, jc.SingleStepSequential
    )
    assert type(net.drop) is layer.Dropout and type(net.tdbn) is layer.ThresholdDependentBatchNorm2d
    assert list(net.state_dict()) == list(keys)
    net.load_state_dict(keys, strict=True)
    net.eval()
    torch.testing.assert_close(net(x), ref, rtol=0, atol=0)
    torch.testing.assert_close(net(x.unsqueeze(0)), ref, rtol=0, atol=0)
    adapted = {e.path: e.detail for e in report.adapted}
    assert "reset before every call" in adapted["drop"] and "unsqueeze" in adapted["tdbn"]
    steps = {name: m.step_mode for name, m in net.named_modules() if isinstance(m, base.StepModule)}
    assert steps == {
        "sn1": "s",
        "block.1": "s",
        "drop": "s",
        "tdbn": "m",
    }  # tdbn is multi-step only


def test_tlast_containers():
    src = TLastNet()
    x = torch.randn(4, 6) * 3
    functional.set_step_mode(src, "m")
    ref = src(x.unsqueeze(-1))[..., 0]
    kept = ss.spikingjelly.collapse(src)  # its own forward: called as before, [B, F, 1]
    torch.testing.assert_close(kept(x.unsqueeze(-1))[..., 0], ref, rtol=0, atol=0)
    net = ss.spikingjelly.collapse(src, step_mode="s", input_ndim=None)
    assert isinstance(net.a, jc.SingleStepSequential) and isinstance(net.b, jc.SingleStepSequential)
    torch.testing.assert_close(net(x), ref, rtol=0, atol=0)
    assert list(net.state_dict()) == list(src.state_dict())


def test_dropout_draws_a_fresh_mask_each_call():
    src = nn.Sequential(layer.Conv2d(1, 2, 1), layer.Dropout(0.5), neuron.IFNode(v_threshold=-1.0))
    net = ss.spikingjelly.collapse(src).train()
    x = torch.ones(64, 1, 4, 4)
    a, b = net[1](x), net[1](x)
    assert not torch.equal(a, b)  # SpikingJelly's own Dropout would reuse its mask until reset


def _mlp():
    return nn.Sequential(
        layer.Linear(8, 16), neuron.LIFNode(), layer.Linear(16, 4), neuron.IFNode()
    )


def test_input_shapes_and_time_dimension_error():
    src = nn.Sequential(
        layer.Conv2d(1, 4, 3), neuron.LIFNode(), layer.Flatten(), layer.Linear(4 * 6 * 6, 3)
    )
    functional.set_step_mode(src, "m")
    x = torch.rand(2, 1, 8, 8) * 4
    ref = src(x.unsqueeze(0))
    net, report = ss.spikingjelly.collapse(src, return_report=True)
    assert report.input_ndim == 4 and ref.shape == (1, 2, 3)
    assert net(x).shape == (2, 3) and torch.equal(net(x), ref[0])
    assert torch.equal(net(x.unsqueeze(0)), ref[0])
    with pytest.raises(ShapeError, match=r"T=4.*single-step \(T=1\)"):
        net(x.unsqueeze(0).repeat(4, 1, 1, 1, 1))
    # an MLP's input ndim cannot be inferred: the check is off unless input_ndim is given
    _, mlp_report = ss.spikingjelly.collapse(_mlp(), return_report=True)
    assert mlp_report.input_ndim is None and any("input check off" in n for n in mlp_report.notes)
    strict = ss.spikingjelly.collapse(_mlp(), input_ndim=2)
    assert strict(torch.rand(1, 3, 8)).shape == (3, 4)
    with pytest.raises(ShapeError):
        strict(torch.rand(2, 3, 8))


def test_step_mode_m_keeps_time_axis():
    src = _mlp()
    functional.set_step_mode(src, "m")
    x = torch.rand(3, 8) * 4
    ref = src(x.unsqueeze(0))
    net = ss.spikingjelly.collapse(src, step_mode="m", input_ndim=2)
    assert all(m.step_mode == "m" for m in net.modules() if isinstance(m, base.StepModule))
    assert torch.equal(net(x), ref) and torch.equal(net(x.unsqueeze(0)), ref)


def test_reset_cache_invalidated_and_reset_net_works():
    src = nn.Sequential(layer.Linear(8, 8), neuron.LIFNode())
    functional.reset_net(src)  # caches the module list of src
    old_node = src[1]
    net = ss.spikingjelly.collapse(src, inplace=True)
    assert net is src
    cached = net_config._RESET_MODULE_CACHE.get(net)
    assert cached is None or all(ref() is not old_node for ref in cached)
    functional.reset_net(net)
    assert all(ref() is not old_node for ref in net_config._RESET_MODULE_CACHE[net])


def test_training_after_collapse():
    """Gradients reach every converted node via the S² surrogate; PLIF's w and KLIF's k learn."""
    torch.manual_seed(0)
    src = nn.Sequential(
        layer.Linear(10, 32),
        neuron.ParametricLIFNode(),
        layer.Linear(32, 32),
        neuron.KLIFNode(),
        layer.Linear(32, 32),
        neuron.LIFNode(),
        layer.Linear(32, 32),
        neuron.IFNode(),
        layer.Linear(32, 3),
    )
    functional.set_step_mode(src, "m")
    net = ss.spikingjelly.collapse(src)
    seen = {}
    nodes = [i for i, m in enumerate(net) if isinstance(m, jc.CollapsedNode)]
    assert len(nodes) == 4
    for i in nodes:
        assert isinstance(net[i].surrogate_function, ReducedS2)
        net[i].register_full_backward_hook(lambda m, gi, go, i=i: seen.__setitem__(i, gi[0]))
    net(torch.randn(128, 10) * 2).pow(2).mean().backward()
    for i in nodes:
        assert float(seen[i].abs().sum()) > 0, i
    assert isinstance(net[1].w, nn.Parameter) and float(net[1].w.grad.abs()) > 0
    assert isinstance(net[3].k, nn.Parameter) and float(net[3].k.grad.abs()) > 0
    functional.reset_net(net)
    torch.optim.SGD(net.parameters(), lr=0.1).step()


def test_input_net_untouched_and_report():
    src = _mlp()
    functional.set_step_mode(src, "m")
    before = {k: v.clone() for k, v in src.state_dict().items()}
    net, report = ss.spikingjelly.collapse(src, return_report=True)
    assert type(src[1]) is neuron.LIFNode and src[1].step_mode == "m"
    assert all(torch.equal(before[k], v) for k, v in src.state_dict().items())
    assert [
        (e.path, e.source.rsplit(".", 1)[1], e.target.rsplit(".", 1)[1]) for e in report.replaced
    ] == [
        ("1", "LIFNode", "CollapsedLIFNode"),
        ("3", "IFNode", "CollapsedIFNode"),
    ]
    text = str(report)
    assert "replaced     1: spikingjelly.activation_based.neuron.lif.LIFNode" in text


def test_no_neuron_warns_and_returns_same_object():
    src = nn.Sequential(layer.Linear(3, 3), layer.Dropout(0.2))
    with pytest.warns(SingleStepWarning, match="no spiking neuron"):
        assert ss.spikingjelly.collapse(src) is src


def test_errors_keep():
    src = nn.Sequential(layer.Linear(3, 3), neuron.TernaryIFNode(), neuron.IFNode())
    with pytest.warns(SingleStepWarning, match="left 1 module"):
        net = ss.spikingjelly.collapse(src, errors="keep")
    assert type(net[1]) is neuron.TernaryIFNode and isinstance(net[2], jc.CollapsedIFNode)


def test_half_precision_and_meta_device():
    src = nn.Sequential(
        layer.Linear(8, 8), neuron.ParametricLIFNode(), layer.Linear(8, 4), neuron.LIFNode()
    )
    half = ss.spikingjelly.collapse(copy.deepcopy(src).to(torch.bfloat16), input_ndim=2)
    x = torch.randn(16, 8, dtype=torch.bfloat16) * 3
    out = half(x)
    assert out.dtype == torch.bfloat16 and half[1].w.dtype == torch.bfloat16
    with torch.device("meta"):
        meta_src = nn.Sequential(
            layer.Linear(8, 8), neuron.ParametricLIFNode(), layer.Linear(8, 4), neuron.LIFNode()
        )
    meta = ss.spikingjelly.collapse(meta_src, input_ndim=2)
    assert meta[1].w.device.type == "meta"
    assert list(meta.state_dict()) == list(meta_src.state_dict())
    assert meta(torch.empty(2, 8, device="meta")).device.type == "meta"


def test_dispatch_and_wrong_entry_point():
    import snntorch as snn

    sj = _mlp()
    st = nn.Sequential(nn.Linear(8, 8), snn.Leaky(beta=0.9, init_hidden=True))
    mixed = nn.Sequential(
        nn.Linear(8, 8), snn.Leaky(beta=0.9, init_hidden=True), layer.Linear(8, 8), neuron.IFNode()
    )
    _, r1 = ss.collapse(sj, return_report=True)
    _, r2 = ss.collapse(st, return_report=True)
    net, r3 = ss.collapse(mixed, return_report=True)
    assert r1.frameworks == ("spikingjelly",) and r2.frameworks == ("snntorch",)
    assert set(r3.frameworks) == {"snntorch", "spikingjelly"} and len(r3.replaced) == 2
    with pytest.raises(ConversionError, match="use snn_singlestep.spikingjelly.collapse"):
        ss.snntorch.collapse(mixed)
    with pytest.raises(ConversionError, match="use snn_singlestep.snntorch.collapse"):
        ss.spikingjelly.collapse(mixed)


def test_bad_arguments():
    with pytest.raises(ConversionError, match="expects a torch.nn.Module"):
        ss.spikingjelly.collapse(lambda x: x)
    for kwargs in (
        {"mode": "fast"},
        {"step_mode": "x"},
        {"errors": "ignore"},
        {"input_ndim": 0},
        {"data": [torch.ones(1)]},
    ):
        with pytest.raises(ss.ConfigError):
            ss.spikingjelly.collapse(_mlp(), **kwargs)
    with pytest.raises(ss.ConfigError, match="needs data"):
        ss.spikingjelly.collapse(_mlp(), mode="calibrated")


def test_every_rule_is_in_the_docs_table():
    import pathlib

    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "collapse.md").read_text()
    missing = [
        r.source.__name__
        for r in ss.list_rules()
        if r.framework != "user" and f"`{r.source.__name__}`" not in doc
    ]
    assert not missing, f"rules not documented in docs/collapse.md: {missing}"


def test_example_script_runs():
    import importlib.util
    import math
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "collapse_spikingjelly.py"
    spec = importlib.util.spec_from_file_location("collapse_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = example.main(["--steps", "2", "--pretrain-steps", "1", "--batch", "8"])
    assert out["equal"] and len(out["losses"]) == 2 and all(math.isfinite(v) for v in out["losses"])


def test_collapsed_nets_pickle(tmp_path):
    import snntorch as snn

    sj = ss.spikingjelly.collapse(ConvNet())
    st = ss.snntorch.collapse(nn.Sequential(nn.Linear(4, 4), snn.Leaky(beta=0.9, init_hidden=True)))
    x = torch.rand(1, 3, 1, 8, 8)  # ConvNet's own forward takes [T, B, ...], as before collapse
    for net, inp in ((sj.eval(), x), (st, torch.rand(3, 4))):
        path = tmp_path / "net.pt"
        torch.save(net, path)
        loaded = torch.load(path, weights_only=False)
        torch.testing.assert_close(loaded(inp), net(inp), rtol=0, atol=0)


def test_calibrated_state_dict_loads_into_a_fresh_collapse():
    """A checkpoint of a calibrated net restores its thresholds in a newly collapsed copy."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(layer.Linear(4, 3), neuron.LIFNode())
    calibrated = ss.spikingjelly.collapse(
        net, mode="calibrated", data=[torch.rand(16, 4)], T=4, input_ndim=2
    )
    fresh = ss.spikingjelly.collapse(net, input_ndim=2)
    x = torch.rand(64, 4)
    assert fresh[1].get_threshold() == 1.0  # the float v_threshold of the source
    assert float(calibrated[1].get_threshold()) != 1.0
    fresh.load_state_dict(calibrated.state_dict())  # strict: no unexpected key
    assert torch.equal(fresh[1].get_threshold(), calibrated[1].get_threshold())
    assert torch.equal(fresh(x), calibrated(x))
