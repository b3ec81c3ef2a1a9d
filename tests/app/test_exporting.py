"""``export_checkpoint``: the model of a training checkpoint rebuilt and exported to a file."""

import os

import pytest
import torch

from snn_singlestep.app.checkpoint import save_checkpoint
from snn_singlestep.app.exporting import export_checkpoint
from snn_singlestep.app.models import build_model
from snn_singlestep.errors import ConfigError, ShapeError

_WHY = "export needs the deploy extra: pip install snn_singlestep[deploy]"


def _checkpoint(tmp_path, name: str, **sizes):
    """A checkpoint of an untrained ``name`` net for 8×8 digits, and the net itself."""
    config = {"model": name, "in_shape": [1, 8, 8], "num_classes": 10, **sizes}
    built = {k: tuple(v) if isinstance(v, list) else v for k, v in sizes.items()}
    model = build_model(name, in_shape=(1, 8, 8), num_classes=10, **built)
    path = save_checkpoint(tmp_path / "ckpt.pt", {"config": config, "model": model.state_dict()})
    return path, model.eval()


def test_export_checkpoint_nir(tmp_path):
    pytest.importorskip("nir", reason=_WHY)
    from snn_singlestep.export import from_nir

    ckpt, model = _checkpoint(tmp_path, "mlp", framework="snntorch", hidden=[16])
    out = export_checkpoint(ckpt, tmp_path / "net.nir", "nir")
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(from_nir(out)(x), model(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="format"):
        export_checkpoint(ckpt, tmp_path / "net.x", "tflite")
    with pytest.raises(ShapeError):
        export_checkpoint(ckpt, tmp_path / "bad.nir", "nir", input_shape=(1, 9, 9))
    with pytest.raises(ConfigError, match="input_shape"):
        export_checkpoint(ckpt, tmp_path / "bad.nir", "nir", input_shape=(1, -8, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "net.nir"]
    assert os.path.getsize(out) > 0


def test_export_checkpoint_onnx(tmp_path):
    for module in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(module, reason=_WHY)
    import onnxruntime as ort

    ckpt, model = _checkpoint(tmp_path, "cnn", framework="torch", channels=[4])
    out = export_checkpoint(ckpt, tmp_path / "net.onnx", "onnx")
    x = torch.rand(3, 1, 8, 8)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-5, atol=1e-5)
