"""Multi-process training: torchrun with 2 gloo processes on this machine (loopback only)."""

import json
import math

import pytest
import torch
from torch import nn

from _torchrun import run_two_processes

from snn_singlestep.app.distributed import (
    DistContext,
    GlooSyncBatchNorm,
    all_reduce_sum,
    resolve_device,
    setup,
    sync_batchnorm,
    teardown,
)
from snn_singlestep.errors import ConfigError
from snn_singlestep.app.train import TrainConfig, train

# --------------------------------------------------------------------------- one process
def test_setup_without_torchrun_is_a_single_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = setup("cpu")
    assert ctx == DistContext(0, 1, 0, torch.device("cpu"))
    assert ctx.is_main and not ctx.distributed
    assert not torch.distributed.is_initialized()
    teardown(ctx)  # nothing to leave
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert setup("cpu").world_size == 1
    values = torch.tensor([1.0, 2.0])
    assert all_reduce_sum(values, ctx) is values


def test_bad_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE must be an integer, got 'two'"):
        setup("cpu")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == torch.device(expected)
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda:1' asked for, but CUDA is not available"):
            resolve_device("cuda:1")


def test_sync_batchnorm_keeps_weights_keys_and_single_process_behaviour():
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.Flatten(),
                        nn.Linear(3 * 4 * 4, 5), nn.BatchNorm1d(5, momentum=None))
    with torch.no_grad():
        ref[1].weight.uniform_(0.5, 2)
        ref[1].bias.uniform_(-1, 1)
    net = sync_batchnorm(__import__("copy").deepcopy(ref))
    assert [type(m).__name__ for m in net] == ["Conv2d", "GlooSyncBatchNorm", "Flatten",
                                               "Linear", "GlooSyncBatchNorm"]
    assert list(net.state_dict()) == list(ref.state_dict())
    x = torch.randn(6, 2, 4, 4)
    for _ in range(2):  # training mode: batch statistics, running stats updated
        assert torch.equal(net(x), ref(x))
    for a, b in zip(net.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)
    net.eval(), ref.eval()
    assert torch.equal(net(x), ref(x))


def test_sync_batchnorm_leaves_subclasses_alone():
    from spikingjelly.activation_based import layer

    net = nn.Sequential(layer.BatchNorm2d(3), nn.BatchNorm2d(3))
    sync_batchnorm(net)
    assert type(net[0]) is layer.BatchNorm2d and type(net[1]) is GlooSyncBatchNorm
    assert isinstance(sync_batchnorm(nn.BatchNorm1d(2)), GlooSyncBatchNorm)


# --------------------------------------------------------------------------- two processes
_SCRIPT = r'''
"""Run under torchrun: check GlooSyncBatchNorm, then train through the command line."""
import json, os, sys
import torch
import torch.distributed as dist
from torch import nn
import snn_singlestep.app.cli as cli
import snn_singlestep.app.train as train_module
from snn_singlestep.app.distributed import GlooSyncBatchNorm

out = sys.argv[1]
rank = int(os.environ["RANK"])

# 1. Synchronised BatchNorm on 2 x 3 samples == BatchNorm on the 6 samples: values, grads and
#    running statistics (two steps), for BatchNorm2d and for BatchNorm1d with momentum=None.
dist.init_process_group("gloo")
mine = slice(3 * rank, 3 * rank + 3)

def rel(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1.0)).item()

result = {}
for kind, shape, momentum in (("2d", (6, 4, 3, 3), 0.1), ("1d", (6, 4), None)):
    torch.manual_seed(0)
    ref = (nn.BatchNorm2d if kind == "2d" else nn.BatchNorm1d)(4, momentum=momentum)
    sync = GlooSyncBatchNorm(4, momentum=momentum)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        sync.weight.copy_(ref.weight)
    for step in range(2):
        x = torch.randn(shape) * (step + 1) + step
        xr = x.clone().requires_grad_()
        yr = ref(xr)
        yr.pow(3).sum().backward()
        xs = x[mine].clone().requires_grad_()
        ys = sync(xs)
        ys.pow(3).sum().backward()
    dist.all_reduce(sync.weight.grad)
    dist.all_reduce(sync.bias.grad)
    result.update({
        f"{kind} y": rel(ys, yr[mine]),
        f"{kind} x_grad": rel(xs.grad, xr.grad[mine]),
        f"{kind} w_grad": rel(sync.weight.grad, ref.weight.grad),
        f"{kind} b_grad": rel(sync.bias.grad, ref.bias.grad),
        f"{kind} running_var": rel(sync.running_var, ref.running_var),
        f"{kind} running_mean": rel(sync.running_mean, ref.running_mean),
        f"{kind} num_batches_tracked": rel(sync.num_batches_tracked, ref.num_batches_tracked),
    })
with open(os.path.join(out, f"syncbn{rank}.json"), "w") as f:
    json.dump(result, f)

# 2. Training through the command line (the process group is reused, then left to us).
real_train = train_module.train
def spy(config):
    result = real_train(config)
    torch.save({"model": result.model.state_dict(), "history": result.history},
               os.path.join(out, f"rank{result.rank}.pt"))
    return result
train_module.train = spy
code = cli.main(sys.argv[2:])
dist.destroy_process_group()
sys.exit(code)
'''

TRAIN_ARGS = ["--limit", "200", "--hidden", "16", "--epochs", "2", "--batch-size", "32",
              "--lr", "0.01", "--seed", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def torchrun(tmp_path_factory):
    """Run the script above with 2 processes; return (completed process, output dir)."""
    tmp = tmp_path_factory.mktemp("ddp")
    out = tmp / "run"
    proc = run_two_processes(
        _SCRIPT, tmp, "ddp_script.py", "train", *TRAIN_ARGS, "--out", str(out), timeout=400
    )
    return proc, tmp


@pytest.mark.slow
def test_sync_batchnorm_over_two_processes_equals_one_batch(torchrun):
    _, tmp = torchrun
    for rank in (0, 1):
        diffs = json.loads((tmp / f"syncbn{rank}.json").read_text())
        assert len(diffs) == 14 and all(v < 1e-6 for v in diffs.values()), (rank, diffs)


@pytest.mark.slow
def test_both_ranks_end_with_identical_weights(torchrun):
    _, tmp = torchrun
    r0, r1 = (torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["model"].keys() == r1["model"].keys()
    for key in r0["model"]:
        assert torch.equal(r0["model"][key], r1["model"][key]), key
    drop = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert drop(r0["history"]) == drop(r1["history"])


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(torchrun):
    _, tmp = torchrun
    ddp = torch.load(tmp / "rank0.pt", weights_only=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = train(TrainConfig(limit=200, hidden=(16,), epochs=2, batch_size=32, lr=0.01,
                                   seed=3, device="cpu", progress=False))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(ddp["history"], single.history):
        for key in ("train_loss", "test_loss"):
            assert math.isclose(a[key], b[key], rel_tol=1e-5), (key, a, b)
        for key in ("train_accuracy", "test_accuracy"):
            assert abs(a[key] - b[key]) <= 1 / 200 + 1e-12, (key, a, b)
        assert a["lr"] == b["lr"]
    state = single.model.state_dict()
    for key, value in ddp["model"].items():
        assert torch.allclose(value.float(), state[key].float(), atol=1e-5, rtol=1e-5), key


@pytest.mark.slow
def test_only_rank_zero_logs_and_writes(torchrun):
    proc, tmp = torchrun
    lines = [l for l in proc.stdout.splitlines() if l.startswith("test accuracy: ")]
    assert len(lines) == 1, proc.stdout
    assert proc.stdout.count("checkpoint: ") == 1
    out = tmp / "run"
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt", "config.json", "curves.png", "metrics.jsonl"
    ]
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert saved["config"]["world_size"] == 2 and saved["config"]["batch_size"] == 32
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    rank0 = torch.load(tmp / "rank0.pt", weights_only=True)
    for key, value in rank0["model"].items():
        assert torch.equal(saved["model"][key], value)
    accuracy = 100 * rank0["history"][-1]["test_accuracy"]
    assert lines[0].startswith(f"test accuracy: {accuracy:.2f}% (200 digits, mlp, snntorch")
