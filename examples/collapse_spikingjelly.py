"""Collapse SpikingJelly's spiking_resnet18 to a single-step (T=1) net and fine-tune it.

The multi-step model stands for one you trained at T=4 (load your checkpoint into it; the
collapsed net has the same ``state_dict`` keys, so the checkpoint also loads into it). The
script:

1. builds ``spiking_resnet18`` with LIF neurons in step mode ``'m'`` (optionally trains it a
   few steps at T=4, ``--pretrain-steps``);
2. collapses it exactly and checks that its output equals the original run for one step;
3. with ``--pretrain-steps > 0``, collapses it again with threshold calibration on one batch
   (single-step firing rates matched to the T=4 rates; an untrained net is silent at every
   T, so there is nothing to calibrate to);
4. fine-tunes the single-step net for a few steps on scikit-learn's digits, upsampled to
   3×32×32, and prints loss and accuracy.

Run: ``python examples/collapse_spikingjelly.py [--steps 30] [--pretrain-steps 40]``
(about half a minute on 2 CPU cores; the short training runs are a demonstration, not a
recipe for accuracy).
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from spikingjelly.activation_based import functional, neuron
from spikingjelly.activation_based.model import spiking_resnet

import snn_singlestep as ss

warnings.filterwarnings("ignore", message=".*CUDA.*")


def digits_32x32(seed: int = 0):
    """Digits as 3×32×32 images in [0, 1]: 1437 train, 360 test."""
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:1437], perm[1437:]
    return x[tr], y[tr], x[te], y[te]


def accuracy(net, x, y) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="fine-tuning steps at T=1")
    parser.add_argument(
        "--pretrain-steps", type=int, default=40, help="training steps at T=4 first"
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    xtr, ytr, xte, yte = digits_32x32()

    # 1. the multi-step model (load your T=4 checkpoint here)
    net = spiking_resnet.spiking_resnet18(spiking_neuron=neuron.LIFNode, num_classes=10)
    functional.set_step_mode(net, "m")
    gen = torch.Generator().manual_seed(1)
    if args.pretrain_steps:
        opt = torch.optim.Adam(net.parameters(), lr=args.lr)
        net.train()
        for _ in range(args.pretrain_steps):
            idx = torch.randint(len(xtr), (args.batch,), generator=gen)
            functional.reset_net(net)
            out = net(xtr[idx].unsqueeze(0).repeat(4, 1, 1, 1, 1)).mean(0)
            loss = F.cross_entropy(out, ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        functional.reset_net(net)
    net.eval()
    with torch.no_grad():
        functional.reset_net(net)
        out = net(xte.unsqueeze(0).repeat(4, 1, 1, 1, 1)).mean(0)
        functional.reset_net(net)
    print(
        f"multi-step net after {args.pretrain_steps} training steps at T=4: test accuracy "
        f"{100 * float((out.argmax(1) == yte).float().mean()):.1f} %"
    )

    # 2. exact collapse: the original's first step, spike for spike
    t0 = time.perf_counter()
    exact, report = ss.spikingjelly.collapse(net, return_report=True)
    print(
        f"collapsed in {time.perf_counter() - t0:.2f} s: {len(report.replaced)} neurons replaced, "
        f"input [B, 3, 32, 32] (also [1, B, ...]); state_dict keys unchanged: "
        f"{list(exact.state_dict()) == list(net.state_dict())}"
    )
    exact.load_state_dict(net.state_dict(), strict=True)  # a multi-step checkpoint loads as it is
    exact.eval()
    with torch.no_grad():
        functional.reset_net(net)
        same = torch.equal(exact(xte[:8]), net(xte[:8].unsqueeze(0))[0])
    print(
        f"exact collapse equals the original run for one step: {same}; test accuracy "
        f"{100 * accuracy(exact, xte, yte):.1f} %"
    )

    # 3. calibrated collapse: thresholds matched to the multi-step firing rates at T=4
    single = exact
    if args.pretrain_steps:
        single, report = ss.spikingjelly.collapse(
            net, mode="calibrated", data=[xtr[:128]], T=4, return_report=True
        )
        rates = [f"{c.rate_before:.3f}->{c.rate_after:.3f}" for c in report.calibration[:4]]
        print(
            f"calibrated {len(report.calibration)} neurons (first-step rate -> calibrated rate): "
            f"{', '.join(rates)}, ..."
        )
        print(f"calibrated collapse: test accuracy {100 * accuracy(single, xte, yte):.1f} %")

    # 4. fine-tune at T=1 (an ordinary training loop: no time dimension, no reset_net needed)
    opt = torch.optim.Adam(single.parameters(), lr=args.lr)
    t0 = time.perf_counter()
    losses = []
    for step in range(args.steps):
        single.train()
        idx = torch.randint(len(xtr), (args.batch,), generator=gen)
        loss = F.cross_entropy(single(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == args.steps - 1:
            print(f"  step {step:3d}  loss {loss.item():.3f}")
    acc = accuracy(single, xte, yte)
    print(
        f"test accuracy after {args.steps} steps ({time.perf_counter() - t0:.1f} s): "
        f"{100 * acc:.1f} %"
    )
    return {"equal": same, "losses": losses, "accuracy": acc}


if __name__ == "__main__":
    main()
