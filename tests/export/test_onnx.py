"""ONNX export of single-step nets (snn_singlestep.export.to_onnx), checked with onnxruntime."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from snn_singlestep import S2Cell, S2Neuron, S2Node
from snn_singlestep.core.surrogate import S2Spike
from snn_singlestep.errors import ConfigError, ConversionError, ShapeError
from snn_singlestep.export import ONNX_OPSET, to_onnx
from snn_singlestep.models import SingleStepCNN, make_neuron

_WHY = "ONNX export needs the deploy extra: pip install snn_singlestep[deploy]"
onnx = pytest.importorskip("onnx", reason=_WHY)
ort = pytest.importorskip("onnxruntime", reason=_WHY)
pytest.importorskip("onnxscript", reason=_WHY)


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(session, x: torch.Tensor) -> list[torch.Tensor]:
    return [torch.from_numpy(y) for y in session.run(None, {"input": x.numpy()})]


def _trained_norms(net: nn.Module, x: torch.Tensor) -> nn.Module:
    net.train()
    with torch.no_grad():
        for scale in (1.0, 2.0, 3.0):
            net(x * scale)
    return net.eval()


class SpikesAndReadout(nn.Module):
    """All three neuron glues; returns the last hidden spikes and a membrane readout."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.norm1, self.lif1 = nn.Linear(12, 32), nn.BatchNorm1d(32), S2Cell(0.5)
        self.fc2, self.lif2 = nn.Linear(32, 32), S2Neuron(threshold=0.2, init_hidden=True)
        self.fc3, self.lif3 = nn.Linear(32, 16), S2Node(v_threshold=0.1)
        self.readout = nn.Linear(16, 5)

    def forward(self, x):
        s = self.lif1(self.norm1(self.fc1(x)))
        s = self.lif3(self.fc3(self.lif2(self.fc2(s))))
        return s, self.readout(s)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Export once per module: (net, path) for an MLP with all glues and a CNN."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("onnx")
    mlp = _trained_norms(SpikesAndReadout(), torch.randn(64, 12))
    x_cnn = torch.rand(16, 1, 8, 8)
    cnn = _trained_norms(
        SingleStepCNN((1, 8, 8), 10, channels=(4, 8), framework="spikingjelly"), x_cnn
    )
    # The S2 surrogate's autograd Function must never reach the exporter: record every
    # call made while torch.onnx.export runs (raising would only make the exporter try
    # another capture strategy).
    exporting, reached = [], []
    real_export, real_apply = torch.onnx.export, S2Spike.apply

    def export(*args, **kwargs):
        exporting.append(True)
        try:
            return real_export(*args, **kwargs)
        finally:
            exporting.pop()

    def apply(*args, **kwargs):
        if exporting:
            reached.append(tuple(args[0].shape))
        return real_apply(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.onnx, "export", export)
        mp.setattr(S2Spike, "apply", apply)
        paths = {
            "mlp": to_onnx(
                mlp, torch.randn(1, 12), d / "mlp.onnx"
            ),  # batch 1 sample: still dynamic
            "cnn": to_onnx(cnn, x_cnn, d / "cnn.onnx"),
        }
    return {"mlp": (mlp, paths["mlp"]), "cnn": (cnn, paths["cnn"]), "dir": d, "reached": reached}


def test_surrogate_function_never_reaches_the_exporter(exported):
    assert exported["reached"] == []


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_spikes_exact_and_readout_close(exported, batch):
    net, path = exported["mlp"]
    torch.manual_seed(batch)
    x = torch.randn(batch, 12) * 2
    with torch.no_grad():
        spikes, readout = net(x)
    got_spikes, got_readout = _run(_session(path), x)
    assert got_spikes.dtype == torch.float32 and got_spikes.shape == spikes.shape
    assert torch.equal(got_spikes, spikes)
    torch.testing.assert_close(got_readout, readout, rtol=1e-5, atol=1e-5)
    if batch == 256:
        assert 0 < float(spikes.mean()) < 1  # not vacuous


@pytest.mark.parametrize("batch", [1, 256])
def test_cnn_output_close(exported, batch):
    net, path = exported["cnn"]
    x = torch.rand(batch, 1, 8, 8)
    with torch.no_grad():
        want = net(x)
    (got,) = _run(_session(path), x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_graph_structure(exported):
    model = onnx.load(str(exported["mlp"][1]))
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert {"GreaterOrEqual", "Cast"} <= ops
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)  # no custom/Python ops
    assert {o.domain: o.version for o in model.opset_import}.get("", None) == ONNX_OPSET
    (inp,) = model.graph.input
    assert inp.name == "input"
    assert inp.type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    assert [o.name for o in model.graph.output] == ["output_0", "output_1"]
    assert sorted(p.name for p in exported["dir"].iterdir()) == ["cnn.onnx", "mlp.onnx"]


def test_export_leaves_the_net_untouched(exported):
    net, _ = exported["mlp"]
    surrogates = [net.lif1.surrogate, net.lif2.spike_grad, net.lif3.surrogate_function]
    assert [type(s).__name__ for s in surrogates] == ["S2Surrogate", "S2Surrogate", "ReducedS2"]
    x = torch.randn(4, 12, requires_grad=True)
    net(x)[1].sum().backward()  # still trainable through the surrogate
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)


def test_stateful_and_bad_inputs_are_refused(tmp_path):
    import snntorch as snn
    from spikingjelly.activation_based import layer, neuron

    x = torch.rand(4, 8)
    with pytest.raises(ConversionError, match=r"'1' \(.*Leaky.*collapse"):
        to_onnx(
            nn.Sequential(nn.Linear(8, 4), snn.Leaky(beta=0.9, init_hidden=True)),
            x,
            tmp_path / "a.onnx",
        )
    with pytest.raises(ConversionError, match=r"'1' \(.*LIFNode"):
        to_onnx(nn.Sequential(layer.Linear(8, 4), neuron.LIFNode()), x, tmp_path / "a.onnx")
    net = nn.Sequential(nn.Linear(8, 4), make_neuron("torch"))
    with pytest.raises(ShapeError, match=r"\(4, 9\)"):
        to_onnx(net, torch.rand(4, 9), tmp_path / "a.onnx")
    from snn_singlestep.models import SingleStepMLP

    with pytest.raises(ShapeError, match="T=3"):
        to_onnx(SingleStepMLP(8, 3, hidden=(4,)), torch.rand(3, 4, 8), tmp_path / "a.onnx")
    with pytest.raises(ConfigError, match="does not exist"):
        to_onnx(net, x, tmp_path / "missing" / "a.onnx")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        to_onnx(net, x, tmp_path / "file" / "a.onnx")
    with pytest.raises(ConfigError, match="is a directory"):
        to_onnx(net, x, tmp_path)
    with pytest.raises(ConfigError, match="opset_version"):
        to_onnx(net, x, tmp_path / "a.onnx", opset_version=7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_failures_leave_no_partial_file(tmp_path, monkeypatch):
    net = nn.Sequential(nn.Linear(8, 4), S2Cell()).eval()
    target = tmp_path / "net.onnx"
    target.write_bytes(b"previous")

    def broken_export(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    with pytest.raises(ConversionError, match="exporter exploded"):
        to_onnx(net, torch.rand(4, 8), target)
    monkeypatch.undo()

    def broken_save(model, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(onnx, "save_model", broken_save)
    with pytest.raises(OSError, match="disk full"):
        to_onnx(net, torch.rand(4, 8), target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"]


def test_missing_dependency_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install snn_singlestep\[deploy\]"):
        to_onnx(nn.Sequential(nn.Linear(8, 4), S2Cell()), torch.rand(4, 8), tmp_path / "a.onnx")
    assert list(tmp_path.iterdir()) == []
