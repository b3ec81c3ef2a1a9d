"""``snn-singlestep`` and the files it reads and writes: no silent overwrites, one-line errors
for unusable weights files, a notice for untrained conversions, no stale temporary files."""

import os
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from snn_singlestep.app.cli import main
from snn_singlestep.app.train import remove_stale_temp_files

TINY = ["--limit", "64", "--hidden", "8", "--epochs", "1", "--batch-size", "32",
        "--no-progress", "--device", "cpu"]
ZOO = "MNISTNet"  # the smallest net of SpikingJelly's model zoo


pytestmark = pytest.mark.usefixtures("one_thread")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A checkpoint of a tiny training run."""
    out = tmp_path_factory.mktemp("trained") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", *TINY, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out / "checkpoint.pt"


# ----------------------------------------------------------------------------- overwriting
def test_convert_refuses_to_overwrite_an_existing_file(capsys, tmp_path):
    out = tmp_path / "net.pt"
    out.write_bytes(b"precious")
    code = main(["convert", ZOO, "--out", str(out)])
    line = _error_line(capsys)
    assert code == 2
    assert line == f"snn-singlestep convert: error: --out {out} already exists; pass " \
                   "--overwrite to replace it"
    assert out.read_bytes() == b"precious" and os.listdir(tmp_path) == ["net.pt"]

    assert main(["convert", ZOO, "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()
    assert torch.load(out, weights_only=True)["config"]["zoo"] == ZOO


def test_export_refuses_to_overwrite_an_existing_file(capsys, tmp_path, trained):
    pytest.importorskip("onnx")
    out = tmp_path / "net.onnx"
    out.write_bytes(b"precious")
    code = main(["export", str(trained), str(out), "--format", "onnx"])
    line = _error_line(capsys)
    assert code == 2
    assert line == f"snn-singlestep export: error: {out} already exists; pass --overwrite " \
                   "to replace it"
    assert out.read_bytes() == b"precious" and os.listdir(tmp_path) == ["net.onnx"]

    assert main(["export", str(trained), str(out), "--format", "onnx", "--overwrite"]) == 0
    assert capsys.readouterr().out.strip() == f"saved: {out}"
    assert out.read_bytes() != b"precious"
    assert sorted(os.listdir(tmp_path)) == ["net.onnx"]  # no temporary file left


def test_new_files_need_no_overwrite(capsys, tmp_path, trained):
    pytest.importorskip("nir")
    out = tmp_path / "net.nir"
    assert main(["export", str(trained), str(out), "--format", "nir"]) == 0
    assert out.is_file()


@pytest.mark.parametrize("command", ["convert", "export"])
def test_help_documents_overwrite(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--overwrite" in capsys.readouterr().out


# ----------------------------------------------------------------------------- weights files
def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(300))


def _text(path: Path) -> None:
    path.write_text("shopping list: eggs, milk\n")


def _truncated(path: Path) -> None:
    torch.save({"conv.weight": torch.zeros(100)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a tensor")


def _tensor(path: Path) -> None:
    torch.save(torch.zeros(3), path)


def _module(path: Path) -> None:
    torch.save(nn.Linear(2, 2), path)  # pickled code, never unpickled


@pytest.mark.parametrize(
    "make,cause",
    [
        (_text, "is not a readable weights file (truncated or corrupt): not a PyTorch file"),
        (_random_bytes, "is not a readable weights file (truncated or corrupt): not a PyTorch "
                        "file"),
        (_truncated, "is not a readable weights file (truncated or corrupt): an incomplete "
                     "torch.save zip archive"),
        (_foreign_zip, "is not a readable weights file (truncated or corrupt): a zip archive, "
                       "but not one torch.save wrote"),
        (_tensor, "is not a readable weights file (not a state_dict): it holds Tensor"),
        (_module, "holds objects other than tensors and plain Python values; refusing to "
                  "unpickle it (weights_only=True): Unsupported global"),
    ],
)
def test_unusable_weights_are_one_line_naming_file_and_cause(make, cause, capsys, tmp_path):
    weights = tmp_path / "notes.txt"
    make(weights)
    out = tmp_path / "o.pt"
    code = main(["convert", ZOO, "--checkpoint", str(weights), "--out", str(out)])
    line = _error_line(capsys)
    assert code == 1
    assert line.startswith(f"snn-singlestep convert: error: {weights} {cause}"), line
    assert "weights_only set to False" not in line and "Re-running" not in line
    assert not out.exists()


def test_a_missing_weights_file(capsys, tmp_path):
    missing = tmp_path / "none.pt"
    assert main(["convert", ZOO, "--checkpoint", str(missing), "--out",
                 str(tmp_path / "o.pt")]) == 1
    assert _error_line(capsys) == (f"snn-singlestep convert: error: weights file {missing} "
                                   "does not exist or is not a file")


@pytest.mark.parametrize("make", [_random_bytes, _module])
def test_eval_of_an_unusable_file_gives_no_pytorch_advice(make, capsys, tmp_path):
    path = tmp_path / "c.pt"
    make(path)
    assert main(["eval", str(path)]) == 1
    line = _error_line(capsys)
    assert line.startswith(f"snn-singlestep eval: error: {path} ")
    assert "weights_only" not in line.split("refusing to unpickle it (weights_only=True)")[-1]


def test_legacy_torch_save_files_are_still_read(capsys, tmp_path):
    from snn_singlestep.app.models import build_zoo_model

    torch.manual_seed(0)
    state = build_zoo_model(ZOO, num_classes=10, neuron="if").state_dict()
    weights = tmp_path / "old.pt"
    torch.save(state, weights, _use_new_zipfile_serialization=False)
    out = tmp_path / "o.pt"
    assert main(["convert", ZOO, "--checkpoint", str(weights), "--out", str(out)]) == 0
    assert "untrained" not in capsys.readouterr().err  # weights were given
    saved = torch.load(out, weights_only=True)["model"]
    for key, value in state.items():
        assert torch.equal(saved[key], value), key


def test_convert_without_weights_says_the_net_is_untrained(capsys, tmp_path):
    out = tmp_path / "o.pt"
    assert main(["convert", ZOO, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().endswith(f"saved: {out}")
    assert captured.err.strip() == (
        f"snn-singlestep convert: warning: no --checkpoint given, so {out} holds an untrained "
        "net (random initial weights)"
    )


# ----------------------------------------------------------------------------- stale temp files
STALE = [".curves.png.k3x_9q2a.tmp", ".checkpoint.pt.abcdefgh.tmp", ".metrics.jsonl.0a1b2c3d.tmp",
         ".config.json.________.tmp"]
KEPT = [".curves.png.tmp", ".curves.png.abc.tmp", ".notes.txt.abcdefgh.tmp",
        "curves.png.abcdefgh.tmp", ".curves.png.abcdefgh.tmp.bak", ".curves.png.ABCDEFGH.tmp",
        ".other.png.abcdefgh.tmp"]


def _litter(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in STALE + KEPT:
        (out / name).write_bytes(b"partial")
    (out / ".metrics.jsonl.dirdirdi.tmp").mkdir(exist_ok=True)  # a directory: not ours
    link = out / ".curves.png.linklink.tmp"  # a link: not ours
    if not link.is_symlink():
        link.symlink_to(out / ".notes.txt.abcdefgh.tmp")


def _left(out: Path) -> set[str]:
    return {p.name for p in out.iterdir()}


OUTPUTS = {"checkpoint.pt", "config.json", "curves.png", "metrics.jsonl"}
OTHERS = set(KEPT) | {".metrics.jsonl.dirdirdi.tmp", ".curves.png.linklink.tmp"}


def test_train_and_resume_remove_their_own_stale_temp_files_only(capsys, tmp_path):
    out = tmp_path / "run"
    _litter(out)  # a run killed while writing each of its files
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert _left(out) == OUTPUTS | OTHERS
    assert all((out / name).read_bytes() == b"partial" for name in KEPT)

    _litter(out)
    assert main(["train", *TINY, "--out", str(out), "--resume"]) == 0  # nothing left to train
    assert _left(out) == OUTPUTS | OTHERS
    assert (out / ".curves.png.linklink.tmp").is_symlink()
    capsys.readouterr()


def test_remove_stale_temp_files_of_a_missing_directory(tmp_path):
    assert remove_stale_temp_files(tmp_path / "absent") == []
