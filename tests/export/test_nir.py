"""NIR export/import of single-step nets (snn_singlestep.export.to_nir / from_nir)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import snntorch as snn
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from snn_singlestep import S2Cell, S2Neuron, S2Node
from snn_singlestep.models.preact import preact_resnet
from snn_singlestep.errors import ConfigError, ConversionError, ShapeError
from snn_singlestep.export import NIRNet, from_nir, to_nir, write_nir
from snn_singlestep.models import SingleStepCNN, SingleStepMLP, make_neuron

nir = pytest.importorskip(
    "nir", reason="NIR export needs the deploy extra: pip install snn_singlestep[deploy]"
)


NEURONS = ("torch", "snntorch", "spikingjelly")
SPIKING = (S2Cell, S2Neuron, S2Node)


def _trained_norms(net: nn.Module, x: torch.Tensor) -> nn.Module:
    """Give BatchNorm/PSPNorm running statistics that differ from their defaults."""
    net.train()
    with torch.no_grad():
        for scale in (1.0, 2.0, 3.0):
            net(x * scale)
    return net.eval()


def _hidden_spikes(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spikes of every single-step neuron of ``net`` (by module path) on ``x``."""
    found: dict[str, torch.Tensor] = {}
    handles = []
    for path, m in net.named_modules():
        if isinstance(m, SPIKING):

            def hook(mod, args, out, path=path):
                found[path] = (out[0] if isinstance(out, tuple) else out).detach().clone()

            handles.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return found


def _rebuilt_spikes(rebuilt: NIRNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Output of every node of a rebuilt net, by NIR node name; a neuron's graded spikes
    (``Threshold`` → ``Scale`` node ``<path>.gain``) are reported under ``<path>``."""
    found: dict[str, torch.Tensor] = {}
    handles = [
        m.register_forward_hook(
            lambda mod, a, out, key=key: found.__setitem__(key, out.detach().clone())
        )
        for key, m in rebuilt.layers.items()
    ]
    try:
        with torch.no_grad():
            rebuilt(x)
    finally:
        for h in handles:
            h.remove()
    named = {rebuilt.node_names[k]: v for k, v in found.items()}
    for name in list(named):
        if name.endswith(".gain"):
            named[name[: -len(".gain")]] = named[name]
    return named


def _as_tuple(y):
    return y if isinstance(y, tuple) else (y,)


def _assert_round_trip(net: nn.Module, x: torch.Tensor, *, exact_outputs: bool) -> NIRNet:
    graph = to_nir(net, x)
    rebuilt = from_nir(graph)
    with torch.no_grad():
        want, got = _as_tuple(net(x)), _as_tuple(rebuilt(x))
    assert len(want) == len(got)
    for a, b in zip(want, got):
        if exact_outputs:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    spikes, rebuilt_spikes = _hidden_spikes(net, x), _rebuilt_spikes(rebuilt, x)
    assert spikes, "the test net has no neuron"
    for path, s in spikes.items():
        assert torch.equal(rebuilt_spikes[path], s), path
    return rebuilt


# --- round trips --------------------------------------------------------------------


@pytest.mark.parametrize("framework", NEURONS)
def test_spiking_output_net_round_trip_is_identical(framework):
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Linear(12, 32),
        make_neuron(framework, 0.3),
        nn.Linear(32, 8, bias=False),
        make_neuron(framework, 0.1),
    ).eval()
    x = torch.rand(64, 12) * 2
    _assert_round_trip(net, x, exact_outputs=True)
    with torch.no_grad():
        spikes = net(x)
    assert 0 < float(spikes.mean()) < 1  # the test is not vacuous


@pytest.mark.parametrize("framework", NEURONS)
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_model_round_trip_with_folded_batchnorm(framework, model):
    torch.manual_seed(2)
    if model == "mlp":
        net, x = SingleStepMLP(64, 10, hidden=(32, 16), framework=framework), torch.rand(32, 64)
    else:
        net, x = (
            SingleStepCNN((1, 8, 8), 10, channels=(4, 8), framework=framework),
            torch.rand(32, 1, 8, 8),
        )
    net = _trained_norms(net, x)
    graph = to_nir(net, x)
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    assert "BatchNorm" not in " ".join(kinds)
    assert kinds.count("Threshold") >= 2
    if model == "cnn":  # max pooling of spikes: SumPool2d followed by Threshold(0.5)
        pools = [k for k, n in graph.nodes.items() if isinstance(n, nir.SumPool2d)]
        assert pools and all(np.all(graph.nodes[f"{p}.any"].threshold == 0.5) for p in pools)
    _assert_round_trip(net, x, exact_outputs=False)


@pytest.mark.parametrize("norm", ["psp", "batch"])
def test_preact_resnet_residual_sums_and_norms(norm):
    torch.manual_seed(3)
    x = torch.rand(8, 1, 8, 8)
    net = _trained_norms(preact_resnet(20, 10, in_channels=1, width=4, norm=norm), x)
    graph = to_nir(net, x)
    # the residual stream is a sum: a node fed by the stem and every block output before it
    fan_in = {}
    for a, b in graph.edges:
        fan_in.setdefault(b, []).append(a)
    assert sorted(fan_in["blocks.2.norm1"]) == ["blocks.0.conv2", "blocks.1.conv2", "stem"]
    _assert_round_trip(net, x, exact_outputs=False)


def test_nir_strict_threshold_semantics_independent_executor():
    """Run the written graph with nirtorch's interpreter and NIR's rule ``x > threshold``."""
    nirtorch = pytest.importorskip("nirtorch", reason="needs nirtorch (deploy extra)")
    if not hasattr(nirtorch, "nir_to_torch"):
        pytest.skip("nirtorch without nir_to_torch")

    class StrictThreshold(nn.Module):
        def __init__(self, node):
            super().__init__()
            self.register_buffer("t", torch.from_numpy(np.array(node.threshold)))

        def forward(self, x):
            return (x > self.t).to(x.dtype)

    def affine(node):
        lin = nn.Linear(node.weight.shape[1], node.weight.shape[0])
        lin.weight.data = torch.from_numpy(np.array(node.weight))
        lin.bias.data = torch.from_numpy(np.array(node.bias))
        return lin

    node_map = {
        nir.Threshold: StrictThreshold,
        nir.Affine: affine,  # nirtorch 2.6's default drops the bias
        nir.Flatten: lambda n: nn.Flatten(int(n.start_dim) + 1, int(n.end_dim) + 1),
        nir.SumPool2d: lambda n: nn.AvgPool2d(
            tuple(n.kernel_size), tuple(n.stride), tuple(n.padding), divisor_override=1
        ),
    }
    torch.manual_seed(4)
    x = torch.rand(8, 1, 8, 8)
    for net in (
        _trained_norms(preact_resnet(20, 10, in_channels=1, width=4), x),
        _trained_norms(SingleStepCNN((1, 8, 8), 10, channels=(4, 8), framework="spikingjelly"), x),
    ):
        runner = nirtorch.nir_to_torch(to_nir(net, x), node_map)
        out = runner(x)
        out = out[0] if isinstance(out, tuple) else out
        torch.testing.assert_close(out, net(x), rtol=1e-5, atol=1e-5)


def test_ties_and_threshold_dtypes_fire_exactly_like_the_net():
    """v == θ fires; float64 thresholds are compared as torch compares them."""
    f32 = torch.float32
    th64 = torch.tensor([0.7, 0.3, 1.0, 0.1], dtype=torch.float64)
    cells = {
        "scalar": S2Cell(0.7),  # 0-d float64: rounded to float32 before comparing
        "per-feature-f64": S2Cell(th64),  # compared in float64 (wider than the input)
        "per-feature-f32": S2Cell(th64.float()),
    }
    for label, cell in cells.items():
        net = nn.Sequential(nn.Identity(), cell).eval()
        theta = cell.threshold.expand(4)
        base = theta.to(f32)
        candidates = [
            base,
            torch.nextafter(base, torch.full_like(base, -1)),
            torch.nextafter(base, torch.full_like(base, 2)),
        ]
        x = torch.stack([c.to(f32) for c in candidates])
        graph = to_nir(net, x)
        rebuilt = from_nir(graph)
        want = net(x)
        assert torch.equal(rebuilt(x), want), label
        # NIR's rule: spike iff x > threshold
        strict = (x > torch.from_numpy(graph.nodes["1"].threshold)).to(f32)
        assert torch.equal(strict, want), label
    # a membrane exactly at threshold fires
    assert cells["per-feature-f32"](th64.float()[None]).eq(1).all()


def test_write_read_round_trip(tmp_path):
    torch.manual_seed(5)
    x = torch.rand(8, 1, 8, 8)
    net = _trained_norms(SingleStepCNN((1, 8, 8), 10, channels=(4, 8), framework="snntorch"), x)
    path = tmp_path / "net.nir"
    graph = to_nir(net, x, path=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.nir"]
    back = nir.read(path)
    assert set(back.nodes) == set(graph.nodes)
    assert set(back.edges) == set(graph.edges)
    for name, node in graph.nodes.items():
        assert type(back.nodes[name]) is type(node)
    assert back.metadata.get("producer") == "snn_singlestep"
    with torch.no_grad():
        want = net(x)
        assert torch.equal(from_nir(back)(x), from_nir(graph)(x))
        assert torch.equal(from_nir(path)(x), from_nir(str(path))(x))
        torch.testing.assert_close(from_nir(path)(x), want, rtol=1e-5, atol=1e-5)
    # write_nir is atomic too, and overwrites
    write_nir(graph, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.nir"]


def test_reexport_is_a_fixed_point():
    torch.manual_seed(6)
    x = torch.rand(16, 64)
    net = _trained_norms(SingleStepMLP(64, 10, hidden=(32,), framework="torch"), x)
    g1 = to_nir(net, x)
    r1 = from_nir(g1)
    g2 = to_nir(r1, x)
    r2 = from_nir(g2)
    assert torch.equal(r1(x), r2(x))
    th1 = [n.threshold for n in g1.nodes.values() if isinstance(n, nir.Threshold)]
    th2 = [n.threshold for n in g2.nodes.values() if isinstance(n, nir.Threshold)]
    assert len(th1) == len(th2) and all(np.array_equal(a, b) for a, b in zip(th1, th2))
    w1 = [n.weight for n in g1.nodes.values() if isinstance(n, nir.Affine)]
    w2 = [n.weight for n in g2.nodes.values() if isinstance(n, nir.Affine)]
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))


def test_graded_spikes_flatten_view_scale_and_residual_ops():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding="same", groups=1)
            self.spike = S2Neuron(threshold=0.2, init_hidden=True, graded_spikes_factor=2.0)
            self.dw = nn.Conv2d(3, 3, 3, padding=1, groups=3)
            self.spike2 = S2Cell(0.1)
            self.pool = nn.AdaptiveAvgPool2d(2)
            self.fc = nn.Linear(12, 5)

        def forward(self, x):
            h = self.spike(self.conv(x))
            h = self.spike2(self.dw(h) * 0.5 + h)
            h = self.pool(h).view(h.size(0), -1)
            return self.fc(h) - self.fc(h * 2)

    torch.manual_seed(7)
    net = Net().eval()
    x = torch.rand(6, 1, 6, 6)
    graph = to_nir(net, x)
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert {"Scale", "Conv2d", "AvgPool2d", "Flatten", "Threshold"} <= kinds
    _assert_round_trip(net, x, exact_outputs=False)


def test_two_outputs_and_membrane_readout():
    class Tutorial(nn.Module):  # snnTorch tutorial style: (spk, mem) = lif(cur, mem)
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(8, 16), S2Neuron(beta=0.9, threshold=0.2)
            self.fc2, self.lif2 = nn.Linear(16, 4), S2Neuron(beta=0.9, threshold=0.2)

        def forward(self, x):
            mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            return spk2, mem2

    torch.manual_seed(8)
    net = Tutorial().eval()
    x = torch.rand(16, 8) * 2
    graph = to_nir(net, x)
    assert sorted(k for k, n in graph.nodes.items() if isinstance(n, nir.Output)) == [
        "output_0",
        "output_1",
    ]
    assert ("fc2", "output_1") in graph.edges and ("lif2", "output_0") in graph.edges
    _assert_round_trip(net, x, exact_outputs=True)


def test_time_axis_of_size_one_and_step_mode_m():
    torch.manual_seed(9)
    net = SingleStepMLP(8, 3, hidden=(6,), framework="torch").eval()
    x = torch.rand(5, 8)
    graph = to_nir(net, x[None])  # [1, B, F]: the net squeezes T=1 itself
    assert list(graph.nodes["input"].input_type["input"]) == [8]
    assert torch.equal(from_nir(graph)(x), net(x))
    with pytest.raises(ShapeError, match="T=3"):
        to_nir(net, torch.rand(3, 5, 8))

    sj = nn.Sequential(layer.Linear(8, 6), S2Node(v_threshold=0.3), layer.Linear(6, 3))
    functional.set_step_mode(sj, "m")
    graph = to_nir(sj, x[None])
    assert list(graph.nodes["input"].input_type["input"]) == [8]
    assert torch.equal(from_nir(graph)(x), sj(x[None])[0])
    assert sj[1].step_mode == "m"  # the net itself is untouched
    with pytest.raises(ShapeError, match="T=4"):
        to_nir(sj, torch.rand(4, 5, 8))


# --- collapsed nets -----------------------------------------------------------------


def _collapse():
    try:
        from snn_singlestep import collapse
    except ImportError as err:  # pragma: no cover - collapse is written alongside
        pytest.skip(f"snn_singlestep.collapse is not available ({err})")
    return collapse


def test_collapsed_snntorch_nets_round_trip():
    collapse = _collapse()

    class Tutorial(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(8, 16), snn.Leaky(beta=0.9, threshold=0.3)
            self.fc2, self.lif2 = nn.Linear(16, 4), snn.Synaptic(alpha=0.8, beta=0.9, threshold=0.1)

        def forward(self, x):
            mem1 = self.lif1.init_leaky()
            syn2, mem2 = self.lif2.init_synaptic()
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, syn2, mem2 = self.lif2(self.fc2(spk1), syn2, mem2)
            return spk2, mem2

    torch.manual_seed(10)
    x = torch.rand(32, 8) * 3
    nets = [
        Tutorial(),
        nn.Sequential(
            nn.Linear(8, 16),
            snn.Leaky(beta=0.9, threshold=0.3, init_hidden=True),
            nn.Linear(16, 4),
            snn.Lapicque(beta=0.9, threshold=0.01, init_hidden=True),
        ),
    ]
    for net in nets:
        single = collapse(net).eval()
        assert not any(type(m) in (snn.Leaky, snn.Synaptic, snn.Lapicque) for m in single.modules())
        _assert_round_trip(single, x, exact_outputs=False)
        rates = {p: float(s.mean()) for p, s in _hidden_spikes(single, x).items()}
        assert all(r > 0 for r in rates.values()), rates


def test_collapsed_spikingjelly_nets_round_trip():
    collapse = _collapse()
    torch.manual_seed(11)
    mlp = nn.Sequential(
        layer.Linear(8, 16),
        neuron.IFNode(v_threshold=0.3),
        layer.Linear(16, 16),
        neuron.LIFNode(tau=2.0, v_threshold=0.2),
        layer.Linear(16, 4),
    )
    cnn = nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1),
        layer.BatchNorm2d(4),
        neuron.IFNode(v_threshold=0.1),
        layer.MaxPool2d(2),
        layer.Flatten(),
        layer.Linear(64, 4),
    )
    for net, x in ((mlp, torch.rand(32, 8) * 3), (cnn, torch.rand(16, 1, 8, 8))):
        single = _trained_norms(collapse(net), x)
        _assert_round_trip(single, x, exact_outputs=False)
        rates = {p: float(s.mean()) for p, s in _hidden_spikes(single, x).items()}
        assert all(r > 0 for r in rates.values()), rates


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "net, cls",
    [
        (nn.Sequential(nn.Linear(8, 4), snn.Leaky(beta=0.9, init_hidden=True)), "Leaky"),
        (nn.Sequential(layer.Linear(8, 4), neuron.LIFNode()), "LIFNode"),
    ],
    ids=["snntorch.Leaky", "spikingjelly.LIFNode"],
)
def test_stateful_neurons_are_refused(net, cls):
    with pytest.raises(ConversionError, match=rf"'1' \(.*{cls}.*collapse"):
        to_nir(net, torch.rand(4, 8))


@pytest.mark.filterwarnings("ignore:Inhibition is an unstable feature")
def test_unsupported_modules_and_ops_name_the_module():
    x = torch.rand(4, 8)
    with pytest.raises(
        ConversionError, match=r"module '1' \(torch\.nn\.modules\.activation\.ReLU\)"
    ):
        to_nir(nn.Sequential(nn.Linear(8, 4), nn.ReLU()), x)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 4)
            self.bias = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return self.fc(x) + self.bias

    with pytest.raises(ConversionError, match=r"module '0' \(.*Block\) adds a constant"):
        to_nir(nn.Sequential(Block()), x)
    with pytest.raises(ConversionError, match=r"MaxPool2d.*max-pools real values"):
        to_nir(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)), torch.rand(2, 1, 6, 6))
    with pytest.raises(ConversionError, match="inhibition"):
        to_nir(nn.Sequential(nn.Linear(8, 4), S2Neuron(init_hidden=True, inhibition=True)), x)

    class Strict(S2Cell):
        def forward(self, x):
            return (x > self.threshold).to(x.dtype)

    with pytest.raises(ConversionError, match=r"'1' \(.*Strict\) overrides forward"):
        to_nir(nn.Sequential(nn.Linear(8, 4), Strict()), x)
    with pytest.raises(ConversionError, match="track_running_stats"):
        to_nir(nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4, track_running_stats=False)), x)


def test_bad_sample_inputs():
    net = nn.Sequential(nn.Linear(8, 4), S2Cell())
    with pytest.raises(ShapeError, match=r"shape \(4, 9\)"):
        to_nir(net, torch.rand(4, 9))
    with pytest.raises(ConfigError, match="float32 or float64"):
        to_nir(net, torch.ones(4, 8, dtype=torch.long))
    with pytest.raises(ConfigError, match="torch.Tensor"):
        to_nir(net, [[0.0] * 8])
    with pytest.raises(ConversionError, match="torch.nn.Module"):
        to_nir(lambda x: x, torch.rand(4, 8))


def test_unwritable_paths_leave_nothing_behind(tmp_path):
    net = nn.Sequential(nn.Linear(8, 4), S2Cell()).eval()
    x = torch.rand(4, 8)
    afile = tmp_path / "a_file"
    afile.write_text("keep")
    for bad in (tmp_path / "missing" / "net.nir", afile / "net.nir", tmp_path):
        with pytest.raises(ConfigError, match="cannot write|is a directory"):
            to_nir(net, x, path=bad)
    # a failure after the path check leaves the existing file as it was, and no temp file
    target = tmp_path / "net.nir"
    target.write_bytes(b"previous")
    with pytest.raises(ConversionError):
        to_nir(nn.Sequential(nn.Linear(8, 4), nn.ReLU()), x, path=target)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "net.nir"]


def test_write_failure_removes_the_temporary_file(tmp_path, monkeypatch):
    graph = to_nir(nn.Sequential(nn.Linear(8, 4), S2Cell()).eval(), torch.rand(4, 8))
    target = tmp_path / "net.nir"
    target.write_bytes(b"previous")

    def broken_write(filename, graph):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nir, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_nir(graph, target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["net.nir"]


def test_from_nir_refuses_stateful_and_cyclic_graphs(tmp_path):
    w = np.eye(3, dtype=np.float32)
    lif = nir.NIRGraph.from_list(
        nir.Affine(weight=w, bias=np.zeros(3, np.float32)),
        nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
    )
    with pytest.raises(ConversionError, match=r"'lif' is a LIF.*state"):
        from_nir(lif)
    cyclic = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "a": nir.Affine(weight=w, bias=np.zeros(3, np.float32)),
            "t": nir.Threshold(threshold=np.ones(3, np.float32)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "a"), ("a", "t"), ("t", "a"), ("t", "output")],
        type_check=False,
    )
    with pytest.raises(ConversionError, match="cycle"):
        from_nir(cyclic)
    with pytest.raises(ConfigError, match="does not exist"):
        from_nir(tmp_path / "missing.nir")
    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(ConversionError, match="not a readable NIR file"):
        from_nir(junk)
    rebuilt = from_nir(to_nir(nn.Sequential(nn.Linear(8, 4), S2Cell()).eval(), torch.rand(4, 8)))
    with pytest.raises(ShapeError, match=r"samples of shape \(8,\)"):
        rebuilt(torch.rand(4, 7))


def test_foreign_graph_with_strict_threshold():
    """A graph written elsewhere: NIR's 'x > θ' is kept exactly (θ = 1.0 does not fire at 1.0)."""
    graph = nir.NIRGraph.from_list(
        nir.Linear(weight=np.eye(2, dtype=np.float32)),
        nir.Threshold(threshold=np.ones(2, np.float32)),
    )
    net = from_nir(graph)
    one = torch.ones(())
    x = torch.stack([one, torch.nextafter(one, one * 2)])[None]
    assert net(x).tolist() == [[0.0, 1.0]]


def test_missing_dependency_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(ImportError, match=r"pip install snn_singlestep\[deploy\]"):
        to_nir(nn.Sequential(nn.Linear(8, 4), S2Cell()), torch.rand(4, 8))


def test_snntorch_export_to_nir_limitation_is_as_documented():
    """snnTorch 1.0.0 has no hook for third-party neurons: its exporter treats S2Neuron as
    the Leaky it subclasses (docs/deploying.md). Use snn_singlestep.export.to_nir instead."""
    pytest.importorskip("nirtorch", reason="snntorch.export_nir imports nirtorch")
    from snntorch.export_nir import export_to_nir

    net = nn.Sequential(
        nn.Linear(4, 3), S2Neuron(beta=torch.ones(3), threshold=torch.ones(3), init_hidden=True)
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nirtorch deprecation, division by zero (1 - beta)
            graph = export_to_nir(net, torch.rand(1, 4), ignore_dims=[0])
    except (ValueError, AssertionError, TypeError):
        graph = None  # scalar parameters: snnTorch's own type inference fails
    if graph is not None:
        kinds = {type(n).__name__ for n in graph.nodes.values()}
        assert "Threshold" not in kinds and "LIF" in kinds
        lif = next(n for n in graph.nodes.values() if isinstance(n, nir.LIF))
        assert np.isinf(lif.tau).all()  # beta = 1 read as a leaky neuron: wrong dynamics
    ours = to_nir(net.eval(), torch.rand(2, 4))
    assert any(isinstance(n, nir.Threshold) for n in ours.nodes.values())
    assert not any(isinstance(n, nir.LIF) for n in ours.nodes.values())


def test_spikingjelly_nir_exchange_does_not_know_our_nodes():
    """SpikingJelly 2.0's ``nir_exchange.export_to_nir`` maps a fixed set of exact classes
    (IFNode, LIFNode, ParametricLIFNode, CUBALIFNode, ...) and gives no hook for others. torch.fx
    then traces into S2Node's forward (``v - θ``, ``>= 0``, ``.to``) and nirtorch refuses the
    subtraction; a collapsed LIFNode (a subclass of S2Node, not of LIFNode) fails the same way
    (``x / τ`` first). Its ``import_from_nir`` has no ``Threshold``. docs/deploying.md, "Why not
    spikingjelly.activation_based.nir_exchange"; if this test fails, SpikingJelly learnt our
    nodes and to_nir may build on it."""
    pytest.importorskip("nirtorch", reason="spikingjelly's nir_exchange imports nirtorch")
    nir_exchange = pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    from snn_singlestep.spikingjelly import collapse

    torch.manual_seed(0)
    x = torch.rand(3, 8)
    single = nn.Sequential(layer.Linear(8, 4), S2Node(v_threshold=0.5), layer.Linear(4, 2))
    lif = nn.Sequential(layer.Linear(8, 4), neuron.LIFNode(tau=2.0), layer.Linear(4, 2))
    collapsed = collapse(lif)
    assert type(collapsed[1]).__name__ == "CollapsedLIFNode"
    expected = ["Input", "Affine", "Threshold", "Affine", "Output"]
    for net in (single.eval(), collapsed.eval()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError, match="only supported function is addition"):
                nir_exchange.export_to_nir(net, x)
        ours = to_nir(net, x)
        assert [type(n).__name__ for n in ours.nodes.values()] == expected
    # The collapsed LIFNode fires iff x/τ >= 1: our Threshold holds the largest float32 below 2.
    theta = torch.from_numpy(np.asarray(ours.nodes["1"].threshold))
    assert torch.equal(theta, torch.nextafter(torch.full((4,), 2.0), torch.zeros(4)))
    # The multi-step source exports as a stateful nir.LIF (the T=N dynamics, not T=1)...
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = nir_exchange.export_to_nir(lif, x)
    assert "LIF" in {type(n).__name__ for n in graph.nodes.values()}
    # ... and SpikingJelly's importer cannot read what to_nir writes.
    with pytest.raises(ValueError, match="Threshold"):
        nir_exchange.import_from_nir(ours)
