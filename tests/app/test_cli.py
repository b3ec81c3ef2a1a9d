"""``snn-singlestep`` end to end: train, eval, convert, usage errors, resume."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import _fake_datasets as fake
import pytest
import torch

from snn_singlestep.app.cli import main



TINY = ["--limit", "200", "--hidden", "16", "--epochs", "2", "--batch-size", "32", "--lr", "0.01",
        "--no-progress", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _one_thread_no_network(monkeypatch, one_thread):
    fake.block_network(monkeypatch)


def _accuracy_line(out: str) -> str:
    line = out.strip().splitlines()[-1]
    if line.startswith("checkpoint: "):
        line = out.strip().splitlines()[-2]
    assert line.startswith("test accuracy: "), out
    return line


def _accuracy(out: str) -> float:
    return float(_accuracy_line(out).split()[2].rstrip("%"))


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ----------------------------------------------------------------------------- train
@pytest.mark.slow
def test_train_with_no_arguments_reaches_95_percent_and_writes_nothing(capsys, tmp_path,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    line = _accuracy_line(out)
    assert line.endswith(" s)") and "(360 digits, mlp, snntorch S2 neurons, " in line
    assert _accuracy(out) >= 95.0, line
    assert list(tmp_path.iterdir()) == []  # no --out: no files


@pytest.mark.slow
def test_all_glues_train_the_same_net_from_the_command_line(capsys):
    accuracies = {}
    for framework in ("snntorch", "torch", "spikingjelly"):
        assert main(["train", "--framework", framework, *TINY]) == 0
        accuracies[framework] = _accuracy(capsys.readouterr().out)
    assert len(set(accuracies.values())) == 1, accuracies


def test_train_writes_the_output_directory(capsys, tmp_path):
    out = tmp_path / "runs" / "a"
    assert main(["train", "--model", "cnn", "--channels", "4", "8", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1] == f"checkpoint: {out / 'checkpoint.pt'}"
    assert _tree(out) == ["checkpoint.pt", "config.json", "curves.png", "metrics.jsonl"]
    plain = torch.load(out / "checkpoint.pt", weights_only=True)
    assert plain["config"]["model"] == "cnn" and plain["config"]["channels"] == [4, 8]
    assert plain["epoch"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and abs(100 * rows[-1]["test_accuracy"] - _accuracy(printed)) < 0.006


def test_progress_bars_show_loss_and_accuracy(capsys):
    assert main(["train", *[a for a in TINY if a != "--no-progress"], "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "train" in err and "loss=" in err and "test_acc=" in err and "acc=" in err


def _interrupt_at(monkeypatch, step: int) -> None:
    real_step = torch.optim.Adam.step
    calls = []

    def interrupted(opt, *args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return real_step(opt, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", interrupted)


def test_resume_after_an_interruption_reaches_the_same_result(capsys, tmp_path, monkeypatch):
    args = ["train", *TINY, "--epochs", "3"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    whole = _accuracy_line(capsys.readouterr().out)

    _interrupt_at(monkeypatch, 7 * 2 + 3)  # 7 steps per epoch: stop during epoch 3
    assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    assert "snn-singlestep train: interrupted" in capsys.readouterr().err
    monkeypatch.undo()
    fake.block_network(monkeypatch)
    assert main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    resumed = _accuracy_line(capsys.readouterr().out)
    assert resumed.split("(")[0] == whole.split("(")[0]
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)
            for d in ("whole", "cut"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_resume_with_other_settings_names_the_file_and_the_difference(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", *TINY, "--lr", "0.5", "--out", str(out), "--resume"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"snn-singlestep train: error: {out / 'checkpoint.pt'} does not match this "
                   "run: lr is 0.01 in the checkpoint but 0.5 now")


def test_resume_from_a_corrupt_checkpoint_is_exit_1(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    assert main(["train", *TINY, "--out", str(tmp_path / "o"), "--resume", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad} is not a readable checkpoint (truncated or corrupt)" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_train_on_mnist_files(name, capsys, tmp_path):
    fake.write_mnist(tmp_path, name, n_train=32, n_test=16)
    args = ["train", "--dataset", name, "--data-root", str(tmp_path), "--model", "cnn",
            "--channels", "4", "--epochs", "1", "--batch-size", "8", "--no-progress"]
    assert main(args) == 0
    assert f"(16 {name} test images, cnn, snntorch S2 neurons" in capsys.readouterr().out
    # --download with the files present: torchvision finds them and fetches nothing
    assert main([*args, "--download"]) == 0


def test_train_preact_resnet_on_cifar10_files(capsys, tmp_path, monkeypatch):
    fake.write_cifar10(tmp_path, per_batch=4, n_test=8)
    fake.patch_cifar10_md5(monkeypatch, tmp_path)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "cifar10", "--data-root", str(tmp_path), "--model",
                 "preact-resnet", "--depth", "8", "--width", "4", "--framework", "spikingjelly",
                 "--epochs", "1", "--batch-size", "4", "--no-progress", "--out", str(out)]) == 0
    assert "(8 cifar10 test images, preact-resnet, spikingjelly S2 neurons" in (
        capsys.readouterr().out)
    assert main(["eval", str(out / "checkpoint.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "cifar10" and report["samples"] == 8
    assert len(report["firing_rates"]["layers"]) == 2 * 1 * 3 + 1  # 3 stages of 1 block + head


# ----------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
        (["train", "--epochs", "two"], "argument --epochs: must be a positive integer, got 'two'"),
        (["train", "--batch-size", "-3"], "argument --batch-size: must be a positive integer"),
        (["train", "--batch-size", "0"], "argument --batch-size: must be a positive integer"),
        (["train", "--lr", "0"], "argument --lr: must be a positive finite number"),
        (["train", "--lr", "-0.1"], "argument --lr: must be a positive finite number"),
        (["train", "--lr", "nan"], "argument --lr: must be a positive finite number"),
        (["train", "--lr", "inf"], "argument --lr: must be a positive finite number"),
        (["train", "--framework", "keras"],
         "invalid choice: 'keras' (choose from 'torch', 'snntorch', 'spikingjelly')"),
        (["train", "--dataset", "svhn"],
         "invalid choice: 'svhn' (choose from 'digits', 'mnist', 'fashion-mnist', 'cifar10')"),
        (["train", "--model", "vgg"],
         "invalid choice: 'vgg' (choose from 'mlp', 'cnn', 'preact-resnet')"),
        (["train", "--dataset", "mnist"],
         "--dataset mnist is not bundled: give --data-root DIR (torchvision layout, "
         "DIR/MNIST/raw) or pass --download"),
        (["train", "--dataset", "cifar10"], "--dataset cifar10 is not bundled"),
        (["train", "--resume"], "--resume without a CHECKPOINT needs --out DIR"),
        (["train", "--model", "preact-resnet", "--depth", "10"], "depth must be 6n+2"),
        (["train", "--device", "tpu9"], "device must be auto, cpu, cuda or cuda:N"),
        (["eval"], "the following arguments are required: checkpoint"),
        (["eval", "x.pt", "--split", "val"], "invalid choice: 'val'"),
        (["convert", "resnet18", "--out", "x.pt"],
         "unknown SpikingJelly model-zoo net 'resnet18' (did you mean "),
        (["convert", "spiking_resnet18"], "the following arguments are required: --out"),
        (["fly"], "invalid choice: 'fly'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_unknown_zoo_name_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "spiking_resnet17", "--out", "x.pt"])
    err = capsys.readouterr().err
    assert "did you mean spiking_resnet18" in err and "valid: " in err and "sew_resnet18" in err


def test_out_under_a_file_is_a_usage_error(capsys, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as info:
        main(["train", *TINY, "--out", str(blocker / "run")])
    assert info.value.code == 2
    assert f"--out: cannot write to {blocker / 'run'}: {blocker} is not a directory" in (
        capsys.readouterr().err)
    assert _tree(tmp_path) == ["file.txt"]


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX permissions")
def test_read_only_out_directory_is_a_usage_error(capsys, tmp_path, monkeypatch):
    from snn_singlestep.app import cli

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # The CLI asks os.access, which says yes to root for any mode: answer for the locked
    # directory as its permission bits do for everyone else (r-x: no write), so that the
    # test runs as root too, and record that the CLI asked.
    real_access = os.access
    asked = []

    def access(path, mode, *args, **kwargs):
        if Path(path) == locked:
            asked.append(mode)
            return not mode & os.W_OK
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(cli.os, "access", access)
    try:
        with pytest.raises(SystemExit) as info:
            main(["train", *TINY, "--out", str(locked / "run")])
        assert info.value.code == 2
        assert f"{locked} is not writable" in capsys.readouterr().err
        assert list(locked.iterdir()) == []
        assert asked and all(mode & os.W_OK for mode in asked)
    finally:
        locked.chmod(0o700)


def test_unwritable_out_check_does_not_create_directories(tmp_path):
    from snn_singlestep.app.cli import _check_writable_dir

    assert _check_writable_dir("--out", tmp_path / "a" / "b" / "c") is None
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("")
    assert "is not a directory" in _check_writable_dir("--out", tmp_path / "f")


def test_an_earlier_run_is_not_overwritten_by_accident(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["train", *TINY, "--epochs", "1", "--out", str(out)])
    assert info.value.code == 2
    assert "already holds checkpoint.pt from an earlier run; pass --resume" in (
        capsys.readouterr().err)
    assert (out / "checkpoint.pt").read_bytes() == before
    with pytest.raises(SystemExit):
        main(["train", *TINY, "--out", str(out), "--resume", "--overwrite"])
    assert main(["train", *TINY, "--epochs", "1", "--seed", "1", "--out", str(out),
                 "--overwrite"]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["config"]["seed"] == 1


def test_missing_dataset_files_are_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["train", "--dataset", "fashion-mnist", "--data-root", str(tmp_path),
              "--out", str(tmp_path / "run")])
    assert info.value.code == 2
    assert "fashion-mnist train split not found or corrupted under" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- eval
def test_eval_reports_accuracy_and_firing_rates(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--hidden", "16", "8", "--out", str(out)]) == 0
    trained = _accuracy(capsys.readouterr().out)
    ckpt = str(out / "checkpoint.pt")

    assert main(["eval", ckpt, "--limit", "200"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == f"checkpoint: {ckpt} (mlp, snntorch, epoch 2)"
    assert text[1] == "data: digits test split, 200 samples"
    assert text[2] == f"accuracy: {trained:.2f}%"
    assert text[4].startswith("firing rates")
    assert [line.split()[0] for line in text[5:8]] == ["features.2", "features.5", "all"]
    assert text[8] == "energy (estimate per sample):" and text[9].startswith("  macs_per_sample: ")

    assert main(["eval", ckpt, "--json", "--limit", "200"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"checkpoint", "model", "framework", "epoch", "dataset", "split",
                           "samples", "accuracy", "loss", "firing_rates", "energy"}
    assert report["energy"]["table_pj"] == {"mac": 4.6, "ac": 0.9}
    assert report["energy"]["synops_per_sample"] > 0  # the second conv sees spikes
    layers = report["firing_rates"]["layers"]
    assert [(r["layer"], r["neurons"]) for r in layers] == [("features.2", 16), ("features.5", 8)]
    assert all(0.0 <= r["rate"] <= 1.0 for r in layers)
    spikes = sum(r["spikes"] for r in layers)
    assert report["firing_rates"]["overall"] == pytest.approx(spikes / (200 * 24))

    assert main(["eval", ckpt, "--json", "--split", "train", "--limit", "50"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "train" and report["samples"] == 50


def test_eval_errors(capsys, tmp_path):
    missing = tmp_path / "none.pt"
    assert main(["eval", str(missing)]) == 1
    assert f"snn-singlestep eval: error: checkpoint {missing} does not exist" in (
        capsys.readouterr().err)
    torn = tmp_path / "torn.pt"
    torn.write_bytes(b"PK\x03\x04")
    assert main(["eval", str(torn)]) == 1
    assert f"{torn} is not a readable checkpoint" in capsys.readouterr().err

    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    ckpt = str(out / "checkpoint.pt")
    with pytest.raises(SystemExit) as info:
        main(["eval", ckpt, "--dataset", "mnist"])
    assert info.value.code == 2 and "--dataset mnist is not bundled" in capsys.readouterr().err
    fake.write_mnist(tmp_path, "mnist", n_train=4, n_test=4)
    assert main(["eval", ckpt, "--dataset", "mnist", "--data-root", str(tmp_path)]) == 1
    assert "takes 1x8x8 images and 10 classes; mnist has 1x28x28 images" in (
        capsys.readouterr().err)


# ----------------------------------------------------------------------------- convert
@pytest.mark.slow
def test_convert_a_model_zoo_net_and_evaluate_it(capsys, tmp_path, monkeypatch):
    from spikingjelly.activation_based import neuron
    from spikingjelly.activation_based.model import spiking_resnet

    from snn_singlestep import S2Node

    torch.manual_seed(0)
    source = spiking_resnet.spiking_resnet18(spiking_neuron=neuron.IFNode, num_classes=10)
    weights = tmp_path / "trained.pt"
    # saved from a DistributedDataParallel wrapper, inside a training checkpoint
    torch.save({"epoch": 9, "net": {f"module.{k}": v for k, v in source.state_dict().items()}},
               weights)
    out = tmp_path / "single.pt"
    assert main(["convert", "spiking_resnet18", "--checkpoint", str(weights), "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("collapse report: frameworks=spikingjelly, mode=exact")
    assert printed.strip().endswith(f"saved: {out}")

    saved = torch.load(out, weights_only=True)
    assert saved["config"]["zoo"] == "spiking_resnet18" and saved["config"]["neuron"] == "if"
    for key, value in source.state_dict().items():
        assert torch.equal(saved["model"][key], value), key

    from snn_singlestep.app.train import model_from_checkpoint

    model, _ = model_from_checkpoint(out)
    assert any(isinstance(m, S2Node) for m in model.modules())
    assert not any(type(m) is neuron.IFNode for m in model.modules())

    fake.write_cifar10(tmp_path, per_batch=2, n_test=6)
    fake.patch_cifar10_md5(monkeypatch, tmp_path)
    with pytest.raises(SystemExit) as info:  # a converted net names no dataset
        main(["eval", str(out)])
    assert info.value.code == 2 and "names no dataset: pass --dataset" in capsys.readouterr().err
    assert main(["eval", str(out), "--dataset", "cifar10", "--data-root", str(tmp_path),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 6 and report["model"] == "spikingjelly-zoo"
    assert len(report["firing_rates"]["layers"]) == 17  # 1 stem + 8 blocks × 2 neurons


def test_convert_with_weights_that_do_not_fit(capsys, tmp_path):
    weights = tmp_path / "w.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, weights)
    assert main(["convert", "spiking_resnet18", "--checkpoint", str(weights), "--out",
                 str(tmp_path / "o.pt")]) == 1
    err = capsys.readouterr().err
    assert f"snn-singlestep convert: error: {weights} does not fit this model: missing " in err
    assert not (tmp_path / "o.pt").exists()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["convert", "spiking_vgg11", "--checkpoint", str(tmp_path / "junk.pt"),
                 "--out", str(tmp_path / "o.pt")]) == 1
    assert "junk.pt is not a readable weights file" in capsys.readouterr().err


def test_report_text_has_room_for_an_energy_section():
    from snn_singlestep.app.cli import _format_report

    report = {"checkpoint": "c.pt", "model": "mlp", "framework": "torch", "epoch": 3,
              "dataset": "digits", "split": "test", "samples": 4, "accuracy": 0.5, "loss": 1.0,
              "firing_rates": {"layers": [{"layer": "a", "neurons": 2, "spikes": 2, "rate": 0.25}],
                               "overall": 0.25},
              "energy": None}
    text = _format_report(report)
    assert "energy" not in text and text.splitlines()[-1].split() == ["all", "2", "neurons",
                                                                      "0.2500"]
    text = _format_report({**report, "energy": {"total_pJ": 12.5}})
    assert text.splitlines()[-2:] == ["energy (estimate per sample):", "  total_pJ: 12.5"]


def test_threads_option(capsys):
    assert main(["train", *TINY, "--epochs", "1", "--threads", "2"]) == 0
    assert torch.get_num_threads() == 2
    with pytest.raises(SystemExit):
        main(["train", "--threads", "0"])
    assert "argument --threads: must be a positive integer" in capsys.readouterr().err


# ----------------------------------------------------------------------------- entry points
@pytest.mark.parametrize("command", ["train", "eval", "convert"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: snn-singlestep {command}" in capsys.readouterr().out


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "snn_singlestep", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for word in ("--framework", "digits", "--dataset", "--resume", "torchrun", "cifar10"):
        assert word in result.stdout


# ----------------------------------------------------------------------------- the app extra
APP_EXTRA_HINT = 'pip install "snn_singlestep[app]"'


@pytest.mark.parametrize("argv", [["train"], ["eval", "c.pt"], ["--version"]])
def test_without_the_app_extra_one_line_names_what_is_missing(argv, capsys, monkeypatch,
                                                              tmp_path):
    # Simulate an install without scikit-learn and tqdm: find_spec returns None for them.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"snn-singlestep needs the app extra (missing: sklearn, tqdm): {APP_EXTRA_HINT}\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_missing_app_extra_is_checked_with_find_spec(capsys, monkeypatch):
    import snn_singlestep.app.cli as cli

    real = importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert cli.missing_app_modules() == ["matplotlib"]
    assert main(["train"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(missing: matplotlib)" in err and APP_EXTRA_HINT in err


def test_module_entry_point_without_the_app_extra_exits_2():
    # sys.modules[name] = None makes an import fail as if the package were not installed.
    code = (
        "import runpy, sys\n"
        "sys.modules['sklearn'] = sys.modules['matplotlib'] = None\n"
        "sys.argv = ['snn_singlestep', 'train']\n"
        "runpy.run_module('snn_singlestep', run_name='__main__', alter_sys=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"snn-singlestep needs the app extra (missing: sklearn, matplotlib): {APP_EXTRA_HINT}"
    ]


def test_build_kernel_names_a_wrong_file_name_and_keeps_an_existing_kernel(capsys, tmp_path):
    assert main(["build-kernel", "--path", str(tmp_path / "kernel.bin")]) == 1
    assert "must end in .pt2" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    existing = tmp_path / "kernel.pt2"
    existing.write_bytes(b"built earlier")
    assert main(["build-kernel", "--path", str(existing)]) == 0
    out = capsys.readouterr().out
    assert "already built" in out and "--overwrite rebuilds it" in out
    assert existing.read_bytes() == b"built earlier"  # not replaced without --overwrite
