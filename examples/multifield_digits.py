"""A single-step net with a multi-receptive-field block on scikit-learn's digits.

``MultiFieldBlock`` reads the four corner windows of each 8×8 digit one after the other
through one shared ``Conv2d → BatchNorm2d`` and one LIF neuron whose membrane is carried
from window to window (recurrence inside the single time step), merges the four spike
maps with a projection, and a ``Linear`` readout (membrane, non-spiking) classifies.
The same net with ``recurrent=False`` (independent windows) is trained beside it.

    python examples/multifield_digits.py                 # ~20 s on 2 CPU cores
    SNN_SINGLESTEP_FUSED=off python examples/multifield_digits.py   # skip the one-off
                                         # torch.compile of the fused S² backward
    python examples/multifield_digits.py --projection paper
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from snn_singlestep.core.multifield import MultiFieldBlock
from snn_singlestep.app.data import load_digits_split


def build(recurrent: bool, args) -> nn.Sequential:
    block = MultiFieldBlock(
        nn.Sequential(nn.Conv2d(1, args.channels, 3, padding=1), nn.BatchNorm2d(args.channels)),
        window=args.window,
        projection=args.projection,
        surrogate=args.surrogate,
        recurrent=recurrent,
    )
    return nn.Sequential(block, nn.Flatten(), nn.Linear(args.channels * args.window**2, 10))


def run(recurrent: bool, args) -> dict:
    train, test = load_digits_split()
    x, y = train.tensors
    x = x.view(-1, 1, 8, 8)
    x_test, y_test = test.tensors
    x_test = x_test.view(-1, 1, 8, 8)
    torch.manual_seed(args.seed)
    net = build(recurrent, args)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for _ in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), args.batch_size):
            idx = perm[i:i + args.batch_size]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    net.eval()
    block = net[0]
    with torch.no_grad():
        merged, spikes = block.forward_with_spikes(x_test)
        logits = net[2](net[1](merged))
        accuracy = 100 * (logits.argmax(1) == y_test).float().mean().item()
    return {
        "accuracy": accuracy,
        "spike_rate": spikes.mean().item(),
        "rate_per_field": [round(r, 3) for r in spikes.mean(dim=(1, 2, 3, 4)).tolist()],
        "decay": block.decay.item(),
        "threshold": block.threshold.item(),
        "seconds": seconds,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--window", type=int, default=6, help="corner window size (8×8 input)")
    parser.add_argument("--projection", default="mean", choices=["mean", "paper"])
    parser.add_argument("--surrogate", default="s2", choices=["s2", "rectangular"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"digits, corner windows {args.window}×{args.window}, projection={args.projection}, "
          f"surrogate={args.surrogate}, {args.epochs} epochs")
    for recurrent in (True, False):
        r = run(recurrent, args)
        name = "recurrent  (membrane carried)" if recurrent else "independent (no recurrence)"
        print(f"{name}: accuracy {r['accuracy']:.2f} %, spike rate {r['spike_rate']:.3f} "
              f"(per field {r['rate_per_field']}), λ={r['decay']:.3f}, θ={r['threshold']:.3f}, "
              f"{r['seconds']:.1f} s")


if __name__ == "__main__":
    main()
