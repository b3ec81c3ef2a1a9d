"""PSP normalization under multi-process training: the statistic is shared by all processes.

Two gloo processes on this machine (loopback only, started by torchrun as in
``test_distributed.py``) each take b samples of a 2b batch; one training step of a
PSP-normalized net must give the outputs, gradients and running statistics one process
computes on the whole batch.
"""

import copy
import json

import pytest
import torch
from torch import nn

from _torchrun import run_two_processes

from snn_singlestep.app.distributed import SyncPSPNorm, sync_batchnorm, sync_psp_norm
from snn_singlestep.app.models import build_model
from snn_singlestep.core.psp import PSPNorm, PSPNorm1d, PSPNorm2d
from snn_singlestep.errors import ShapeError

TOLERANCE = 1e-5


# --------------------------------------------------------------------------- one process
def _resnet() -> nn.Module:
    return build_model("preact-resnet", in_shape=(3, 8, 8), num_classes=5, depth=8, width=4)


def test_conversion_keeps_weights_keys_and_single_process_behaviour():
    torch.manual_seed(0)
    ref = _resnet()
    net = sync_batchnorm(copy.deepcopy(ref))  # what the distributed training setup calls
    norms = [type(m) for m in net.modules() if isinstance(m, PSPNorm)]
    assert norms and all(t is SyncPSPNorm for t in norms)
    assert list(net.state_dict()) == list(ref.state_dict())
    x = torch.rand(4, 3, 8, 8)
    for _ in range(2):  # training: batch statistics, running estimate updated
        assert torch.equal(net(x), ref(x))
    for a, b in zip(net.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)
    net.eval(), ref.eval()
    assert torch.equal(net(x), ref(x))


def test_conversion_shares_parameters_and_keeps_settings():
    norm = PSPNorm1d(3, eps=1e-3, momentum=None, affine=True).train(False)
    new = sync_psp_norm(norm)
    assert type(new) is SyncPSPNorm and not new.training
    assert new.weight is norm.weight and new.running_sq_mean is norm.running_sq_mean
    assert (new.eps, new.momentum) == (1e-3, None)
    with pytest.raises(ShapeError, match=r"expects input of shape \[B, C\] or \[B, C, L\]"):
        new(torch.rand(2, 3, 4, 4))  # a PSPNorm1d stays one
    bare = sync_psp_norm(PSPNorm2d(2, affine=False, track_running_stats=False))
    assert bare.weight is None and bare.running_sq_mean is None
    assert type(sync_psp_norm(PSPNorm(2))) is SyncPSPNorm


def test_subclasses_are_left_alone():
    class Custom(PSPNorm2d):
        pass

    net = nn.Sequential(Custom(2), PSPNorm2d(2))
    sync_psp_norm(net)
    assert type(net[0]) is Custom and type(net[1]) is SyncPSPNorm


# --------------------------------------------------------------------------- two processes
_SCRIPT = r'''
"""Run under torchrun with 2 processes: write the largest differences to syncpsp<rank>.json."""
import copy, json, os, sys
import torch
import torch.distributed as dist
from torch import nn
from snn_singlestep.app.distributed import SyncPSPNorm, sync_batchnorm
from snn_singlestep.app.models import build_model
from snn_singlestep.core.psp import PSPNorm1d, PSPNorm2d

torch.set_num_threads(1)
out = sys.argv[1]
dist.init_process_group("gloo")
rank = int(os.environ["RANK"])
B = 6
mine = slice(rank * B // 2, (rank + 1) * B // 2)


def diff(a, b):
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1.0)).item()


result = {}
# 1. The layer alone (float32): two steps, PSPNorm2d with momentum and PSPNorm1d cumulative.
for kind, shape, momentum in (("2d", (B, 4, 3, 3), 0.1), ("1d", (B, 4), None)):
    torch.manual_seed(0)
    ref = (PSPNorm2d if kind == "2d" else PSPNorm1d)(4, momentum=momentum)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    sync = sync_batchnorm(copy.deepcopy(ref))
    assert type(sync) is SyncPSPNorm
    for step in range(2):
        x = torch.randn(shape) * (step + 1) + step
        xr = x.clone().requires_grad_()
        yr = ref(xr)
        yr.pow(3).sum().backward()
        xs = x[mine].clone().requires_grad_()
        ys = sync(xs)
        ys.pow(3).sum().backward()  # this process's share of the same loss
    dist.all_reduce(sync.weight.grad)
    dist.all_reduce(sync.bias.grad)
    result.update({
        f"norm{kind} y": diff(ys, yr[mine]),
        f"norm{kind} x_grad": diff(xs.grad, xr.grad[mine]),
        f"norm{kind} w_grad": diff(sync.weight.grad, ref.weight.grad),
        f"norm{kind} b_grad": diff(sync.bias.grad, ref.bias.grad),
        f"norm{kind} running_sq_mean": diff(sync.running_sq_mean, ref.running_sq_mean),
        f"norm{kind} num_batches_tracked": diff(sync.num_batches_tracked,
                                                ref.num_batches_tracked),
    })


# 2. One training step of a small PSP preact-resnet under DistributedDataParallel with
#    batch B/2 per process against one process with batch B (same loss: the batch mean).
def step(dtype, synchronise):
    torch.manual_seed(1)
    ref = build_model("preact-resnet", in_shape=(3, 8, 8), num_classes=5, depth=8,
                      width=4).to(dtype)
    model = copy.deepcopy(ref)
    if synchronise:
        model = sync_batchnorm(model, torch.device("cpu"))
    ddp = nn.parallel.DistributedDataParallel(model)
    x = torch.rand(B, 3, 8, 8, dtype=dtype) * 2
    y = torch.arange(B) % 5
    loss_fn = nn.CrossEntropyLoss()
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    xr = x.clone().requires_grad_()
    out_ref = ref(xr)
    loss_fn(out_ref, y).backward()
    xs = x[mine].clone().requires_grad_()
    out = ddp(xs)
    loss_fn(out, y[mine]).backward()  # DDP averages the gradients of the processes
    diffs = {
        "out": diff(out, out_ref[mine]),
        # the gradient of the mean loss; one process's share of the batch is half of it
        "x_grad": diff(xs.grad, xr.grad[mine] * 2),
        "param_grad": max(diff(p.grad, q.grad) for p, q in zip(model.parameters(),
                                                                ref.parameters())),
    }
    opt_ref.step()
    opt.step()
    state, state_ref = model.state_dict(), ref.state_dict()
    diffs["running_sq_mean"] = max(diff(state[k], state_ref[k]) for k in state
                                   if k.endswith("running_sq_mean"))
    diffs["weights_after_step"] = max(diff(state[k], state_ref[k]) for k in state)
    norms = sorted({type(m).__name__ for m in model.modules() if "Norm" in type(m).__name__})
    return diffs, norms


for dtype in (torch.float32, torch.float64):
    name = str(dtype).split(".")[1]
    diffs, norms = step(dtype, synchronise=True)
    result.update({f"resnet {name} {k}": v for k, v in diffs.items()})
    result[f"resnet {name} norms"] = norms
unsynced, _ = step(torch.float64, synchronise=False)
result["unsynchronised"] = unsynced
with open(os.path.join(out, f"syncpsp{rank}.json"), "w") as f:
    json.dump(result, f, indent=1)
dist.destroy_process_group()
'''


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("psp_ddp")
    run_two_processes(_SCRIPT, tmp, "psp_script.py", timeout=300)
    return [json.loads((tmp / f"syncpsp{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
def test_sync_psp_norm_over_two_processes_equals_one_batch(two_processes):
    for rank, result in enumerate(two_processes):
        diffs = {k: v for k, v in result.items() if k.startswith("norm")}
        assert len(diffs) == 12 and all(v < TOLERANCE for v in diffs.values()), (rank, diffs)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_training_step_of_a_psp_resnet_matches_one_process(two_processes, dtype):
    for rank, result in enumerate(two_processes):
        assert result[f"resnet {dtype} norms"] == ["SyncPSPNorm"]
        diffs = {k: v for k, v in result.items()
                 if k.startswith(f"resnet {dtype}") and not k.endswith("norms")}
        assert len(diffs) == 5 and all(v < TOLERANCE for v in diffs.values()), (rank, diffs)


@pytest.mark.slow
def test_without_synchronisation_the_processes_differ(two_processes):
    """The check above can fail: per-process statistics give other outputs and gradients."""
    for result in two_processes:
        unsynced = result["unsynchronised"]
        assert unsynced["out"] > 1e-3 and unsynced["param_grad"] > 1e-3, unsynced
