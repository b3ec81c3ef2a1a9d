"""``snn-singlestep`` end to end on the bundled digits."""

import subprocess
import sys

import pytest

from snn_singlestep.cli import main


@pytest.mark.slow
def test_train_default_reaches_95_percent_and_all_glues_agree(capsys):
    accuracies = {}
    for framework in ("snntorch", "torch", "spikingjelly"):
        assert main(["train", "--framework", framework, "--no-progress"]) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith("test accuracy: ")
        accuracies[framework] = float(line.split()[2].rstrip("%"))
    assert accuracies["snntorch"] >= 95.0, accuracies
    # Same maths, same seed: the three glues train the very same net.
    assert len(set(accuracies.values())) == 1, accuracies


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--epochs", "0"], "--epochs: must be a positive integer"),
        (["train", "--batch-size", "-3"], "--batch-size: must be a positive integer"),
        (["train", "--lr", "0"], "--lr: must be a positive finite number"),
        (["train", "--lr", "nan"], "--lr: must be a positive finite number"),
        (["train", "--framework", "keras"], "invalid choice: 'keras'"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "snn_singlestep", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--framework" in result.stdout and "digits" in result.stdout
