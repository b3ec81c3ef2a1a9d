"""Depth × normalization for pre-activation residual S²NNs: accuracy and hidden firing rates.

Trains ``preact_resnet(depth, norm=...)`` for depth 20/56/110 and norm psp/batch/none on
scikit-learn's digits (1×8×8) — or on a CIFAR-10 subset when ``--data-root`` is given —
and prints, per configuration, test accuracy, the mean and max firing rate over hidden
layers, the fraction of dead (rate < 1 %) or saturated (> 90 %) layers and the train time.
Saves a plot of accuracy and firing rate against depth.

    python benchmarks/psp_depth.py               # full run (tens of minutes on 2 cores)
    python benchmarks/psp_depth.py --quick       # sanity run (depth 20 only, 1 epoch)
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from snn_singlestep.models import preact_resnet
from snn_singlestep.app.data import load_digits_split
from snn_singlestep.monitor import FiringRateMonitor


def digits() -> tuple[TensorDataset, TensorDataset, int]:
    train, test = load_digits_split()
    reshape = lambda d: TensorDataset(d.tensors[0].view(-1, 1, 8, 8), d.tensors[1])  # noqa: E731
    return reshape(train), reshape(test), 1


def cifar10_subset(root: str, n_train: int, n_test: int):
    import torchvision
    from torchvision.transforms import ToTensor

    def subset(train: bool, n: int) -> TensorDataset:
        ds = torchvision.datasets.CIFAR10(root, train=train, download=False, transform=ToTensor())
        xs, ys = zip(*(ds[i] for i in range(min(n, len(ds)))))
        return TensorDataset(torch.stack(xs), torch.tensor(ys))

    return subset(True, n_train), subset(False, n_test), 3


def run(depth: int, norm: str, train, test, channels: int, args) -> dict:
    torch.manual_seed(args.seed)
    net = preact_resnet(depth, 10, in_channels=channels, width=args.width, norm=norm)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(args.seed))
    start = time.perf_counter()
    for _ in range(args.epochs):
        net.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    net.eval()
    x_test, y_test = test.tensors
    with torch.no_grad(), FiringRateMonitor(net) as monitor:
        accuracy = (net(x_test).argmax(1) == y_test).float().mean().item()
    rates = [r for name, r in monitor.rates().items() if name != "spike"]  # hidden layers
    return {
        "depth": depth, "norm": norm, "accuracy": accuracy,
        "mean_rate": sum(rates) / len(rates), "max_rate": max(rates),
        "dead_or_saturated": sum(r < 0.01 or r > 0.9 for r in rates) / len(rates),
        "train_seconds": seconds,
    }


def plot(results: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_rate) = plt.subplots(1, 2, figsize=(9, 3.5))
    for i, norm in enumerate(sorted({r["norm"] for r in results})):
        rows = [r for r in results if r["norm"] == norm]
        depths = [r["depth"] for r in rows]
        color = f"C{i}"
        ax_acc.plot(depths, [100 * r["accuracy"] for r in rows], "o-", color=color, label=norm)
        ax_rate.plot(depths, [r["mean_rate"] for r in rows], "o-", color=color, label=f"{norm} mean")
        ax_rate.plot(depths, [r["max_rate"] for r in rows], "x--", color=color, label=f"{norm} max")
    ax_acc.set(xlabel="depth (weighted layers)", ylabel="test accuracy (%)")
    ax_rate.set(xlabel="depth (weighted layers)", ylabel="hidden firing rate", ylim=(0, 1))
    ax_acc.legend()
    ax_rate.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="depth 20, 1 epoch: a sanity run")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110])
    parser.add_argument("--norms", nargs="+", default=["psp", "batch", "none"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", help="CIFAR-10 root (torchvision layout) instead of digits")
    parser.add_argument("--out", default="docs/benchmarks", help="where the plot and JSON go")
    args = parser.parse_args()
    if args.quick:
        args.depths, args.epochs = [20], 1
    if args.data_root:
        train, test, channels = cifar10_subset(args.data_root, 5000, 1000)
    else:
        train, test, channels = digits()
    results = []
    print(f"{'depth':>5} {'norm':>5} {'acc %':>6} {'mean rate':>9} {'max rate':>8} "
          f"{'dead/sat':>8} {'train s':>7}")
    for depth in args.depths:
        for norm in args.norms:
            r = run(depth, norm, train, test, channels, args)
            results.append(r)
            print(f"{depth:>5} {norm:>5} {100 * r['accuracy']:>6.2f} {r['mean_rate']:>9.3f} "
                  f"{r['max_rate']:>8.3f} {r['dead_or_saturated']:>8.2f} {r['train_seconds']:>7.1f}",
                  flush=True)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "psp_depth.json").write_text(json.dumps(results, indent=2))
    plot(results, out / "psp_depth.png")
    print(f"saved {out / 'psp_depth.png'} and {out / 'psp_depth.json'}")


if __name__ == "__main__":
    main()
