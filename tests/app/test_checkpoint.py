"""Checkpoints: plain-PyTorch readable, atomic, clear errors for corrupt or mismatched files."""

import os
import pickle
import stat

import pytest
import torch
from torch import nn

import snn_singlestep.app.checkpoint as ckpt_module
from snn_singlestep.app.checkpoint import (
    FORMAT,
    VERSION,
    atomic_write,
    check_config,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from snn_singlestep.errors import CheckpointError


def _payload(value: float = 1.0) -> dict:
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net(torch.rand(5, 3)).sum().backward()
    opt.step()
    return {
        "config": {"model": "mlp", "hidden": [4], "lr": 0.01, "limit": None, "value": value},
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 2,
        "rng": {"torch": torch.get_rng_state(), "cuda": None},
        "history": [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.25}],
    }


def _listing(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_round_trip_with_plain_torch_load(tmp_path):
    payload = _payload()
    path = save_checkpoint(tmp_path / "c.pt", payload)
    plain = torch.load(path, weights_only=True)  # no snn_singlestep code needed
    assert plain["format"] == FORMAT and plain["version"] == VERSION
    assert plain["config"] == payload["config"]
    assert plain["history"] == payload["history"]
    for key, value in payload["model"].items():
        assert torch.equal(plain["model"][key], value)
    assert plain["optimizer"]["param_groups"] == payload["optimizer"]["param_groups"]
    assert torch.equal(plain["rng"]["torch"], payload["rng"]["torch"])
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 2 and loaded["config"] == payload["config"]
    assert _listing(tmp_path) == ["c.pt"]


def test_save_requires_config_and_model(tmp_path):
    with pytest.raises(CheckpointError, match="lacks config"):
        save_checkpoint(tmp_path / "c.pt", {"model": {}})
    assert _listing(tmp_path) == []


def _fail_during(monkeypatch, where: str, exc: BaseException):
    """Make one step of the atomic write fail, after part of the new file was written."""
    if where == "torch.save":
        real_save = torch.save

        def broken_save(obj, f, *args, **kwargs):
            f.write(b"PK\x03\x04 half a zip archive")  # torn output, as a crash would leave
            raise exc

        monkeypatch.setattr(torch, "save", broken_save)
        return real_save
    if where == "fsync":
        monkeypatch.setattr(ckpt_module.os, "fsync", lambda fd: (_ for _ in ()).throw(exc))
    if where == "replace":
        monkeypatch.setattr(ckpt_module.os, "replace", lambda a, b: (_ for _ in ()).throw(exc))
    return None


@pytest.mark.parametrize("where", ["torch.save", "fsync", "replace"])
@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()],
                         ids=["ENOSPC", "KeyboardInterrupt"])
def test_failed_write_keeps_the_previous_checkpoint_and_leaves_no_temp_file(
    tmp_path, monkeypatch, where, exc
):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _payload(1.0))
    before = path.read_bytes()
    _fail_during(monkeypatch, where, exc)
    with pytest.raises(type(exc)):
        save_checkpoint(path, _payload(2.0))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["checkpoint.pt"]
    assert load_checkpoint(path)["config"]["value"] == 1.0


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    _fail_during(monkeypatch, "torch.save", OSError(5, "I/O error"))
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "checkpoint.pt", _payload())
    assert _listing(tmp_path) == []


def test_successful_overwrite_replaces_the_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _payload(1.0))
    save_checkpoint(path, _payload(3.0))
    assert load_checkpoint(path)["config"]["value"] == 3.0
    assert _listing(tmp_path) == ["checkpoint.pt"]


def test_atomic_write_fsyncs_before_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(ckpt_module.os, "fsync", lambda fd: (calls.append("fsync"),
                                                             real_fsync(fd))[1])
    monkeypatch.setattr(ckpt_module.os, "replace", lambda a, b: (calls.append("replace"),
                                                                 real_replace(a, b))[1])
    with atomic_write(tmp_path / "f.txt", "w") as f:
        f.write("x")
    # file data first, then the rename, then the directory entry
    assert calls == ["fsync", "replace", "fsync"]
    assert (tmp_path / "f.txt").read_text() == "x"


def test_checkpoints_use_the_one_atomic_writer_of_the_core():
    from snn_singlestep.core import io

    assert atomic_write is io.atomic_write
    assert not hasattr(ckpt_module, "_fsync_dir") and not hasattr(ckpt_module, "_file_mode")


def test_new_files_get_the_usual_mode_and_replaced_files_keep_theirs(tmp_path):
    umask = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "c.pt", _payload())
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        path.chmod(0o600)
        save_checkpoint(path, _payload())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(umask)


# ------------------------------------------------------------------------- unreadable files
def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint .*nope\.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file_is_reported_with_its_name(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"c\.pt is not a readable checkpoint \(truncated "
                                              r"or corrupt\)"):
        load_checkpoint(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "g.pt"
    path.write_bytes(os.urandom(300))
    with pytest.raises(CheckpointError, match=r"g\.pt is not a readable checkpoint"):
        load_checkpoint(path)


def test_corrupt_member_inside_a_valid_zip(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _payload())
    data = bytearray(path.read_bytes())
    start = data.find(b"data.pkl") + 40  # scribble over the pickle stream itself
    data[start:start + 30] = b"\xff" * 30
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"c\.pt"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should never run",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "version": 1, "config": {}, "model": {}, "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt holds objects other than tensors and "
                                              r"plain Python values; refusing to unpickle"):
        load_checkpoint(path)


def test_whole_module_pickle_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "payload,message",
    [
        (torch.zeros(3), r"is not an snn_singlestep checkpoint \(expected a dict .* got Tensor\)"),
        ({"model": {}}, r"is not an snn_singlestep checkpoint .* got dict with format=None"),
        ({"format": FORMAT, "version": 1, "model": {}}, "is incomplete: missing config"),
        ({"format": FORMAT, "version": 99, "config": {}, "model": {}},
         "has checkpoint format version 99; this snn_singlestep reads versions up to 1"),
        ({"format": FORMAT, "version": 1, "config": [1], "model": {}}, "config must be a dict"),
    ],
    ids=["tensor", "foreign-dict", "no-config", "future-version", "config-not-dict"],
)
def test_files_that_are_not_our_checkpoints(tmp_path, payload, message):
    path = tmp_path / "x.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------- mismatches
def test_check_config_lists_every_difference():
    saved = {"lr": 0.1, "hidden": [8, 8], "seed": 0, "dataset": "digits"}
    current = {"lr": 0.2, "hidden": (8, 8), "seed": 1, "dataset": "digits"}
    with pytest.raises(CheckpointError) as info:
        check_config("run/c.pt", saved, current, ["lr", "hidden", "seed", "dataset", "epochs"])
    text = str(info.value)
    assert text.startswith("run/c.pt does not match this run: ")
    assert "lr is 0.1 in the checkpoint but 0.2 now" in text
    assert "seed is 0 in the checkpoint but 1 now" in text
    assert "epochs is '<missing>' in the checkpoint but None now" in text
    assert "hidden" not in text and "dataset" not in text  # list == tuple, equal strings
    check_config("c.pt", saved, dict(saved, hidden=(8, 8)), ["lr", "hidden"])  # no error


def test_load_model_state_names_missing_unexpected_and_shapes():
    src = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    dst = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5))
    with pytest.raises(CheckpointError) as info:
        load_model_state(dst, src.state_dict(), "w.pt")
    text = str(info.value)
    assert text.startswith("w.pt does not fit this model: ")
    assert "missing 1.running_mean, 1.running_var, 1.num_batches_tracked" in text
    assert "unexpected" not in text
    assert "shape of 0.weight is (4, 3) in the checkpoint but (5, 3) in the model" in text
    assert "shape of 1.weight is (2, 4) in the checkpoint but (5,) in the model" in text
    extra = dict(nn.Linear(3, 2).state_dict(), scale=torch.ones(1))
    with pytest.raises(CheckpointError, match="does not fit this model: unexpected scale$"):
        load_model_state(nn.Linear(3, 2), extra, "w.pt")
    with pytest.raises(CheckpointError, match="model must be a state_dict, got list"):
        load_model_state(dst, [1, 2], "w.pt")


def test_load_model_state_loads_matching_weights():
    src, dst = nn.Linear(3, 2), nn.Linear(3, 2)
    load_model_state(dst, src.state_dict(), "w.pt")
    assert torch.equal(dst.weight, src.weight) and torch.equal(dst.bias, src.bias)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)
    assert pickle.loads(pickle.dumps(CheckpointError("x"))).args == ("x",)
