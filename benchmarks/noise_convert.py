"""Noise-trained T=1 nets converted to T=N: accuracy against N, with and without noise.

Trains a single-step MLP 64-256-10 (membrane readout) on scikit-learn's digits at T=1,
with Gaussian membrane noise σ (``S2Cell(noise_std=σ)``) and without it (σ = 0), then
runs the trained weights for N steps with :func:`snn_singlestep.to_multistep` and prints
test accuracy against N for

* ``matched``: IF neurons fed ``(I - θ)/w + 1/2``, ``w = σ√(2π)`` (the default mapping;
  for the σ = 0 net it needs an assumed σ, ``--assume-sigma``);
* ``plain``: IF neurons with the same threshold on the same current;

with the input repeated (and, for ``matched``, rate-coded). Two architectures:
``mlp`` (Linear with bias → neuron) and ``mlp-bn`` (Linear → BatchNorm1d → neuron, as in
``snn_singlestep.models.SingleStepMLP``). It also times training the T=1 net against
training the same architecture directly at T=N (snnTorch ``Leaky(beta=1)`` IF neurons,
BPTT, same epochs), one run each, and saves a plot of accuracy against N.

    python benchmarks/noise_convert.py            # full run (a few minutes on 2 cores)
    python benchmarks/noise_convert.py --quick    # sanity run (seconds)
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import torch
from torch import nn

from snn_singlestep.convert.multistep import to_multistep
from snn_singlestep.core.modules import S2Cell
from snn_singlestep.core.surrogate import s2nn
from snn_singlestep.app.data import load_digits_split


def build(arch: str, sigma: float, hidden: int, neuron=None) -> nn.Sequential:
    """MLP 64-hidden-10; ``neuron`` overrides the single-step neuron (direct T=N training)."""
    cell = neuron if neuron is not None else S2Cell(threshold=1.0, noise_std=sigma)
    if arch == "mlp":
        return nn.Sequential(nn.Linear(64, hidden), cell, nn.Linear(hidden, 10))
    return nn.Sequential(nn.Linear(64, hidden, bias=False), nn.BatchNorm1d(hidden), cell,
                         nn.Linear(hidden, 10))


def batches(n: int, batch_size: int, generator: torch.Generator):
    perm = torch.randperm(n, generator=generator)
    for i in range(0, n, batch_size):
        yield perm[i:i + batch_size]


def train_single_step(arch: str, sigma: float, data, args) -> tuple[nn.Module, float]:
    (x, y), _ = data
    torch.manual_seed(args.seed)
    net = build(arch, sigma, args.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for _ in range(args.epochs):
        net.train()
        for idx in batches(len(x), args.batch_size, gen):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval(), time.perf_counter() - start


def train_direct(arch: str, T: int, data, args) -> tuple[float, float]:
    """Same architecture with snnTorch IF neurons, trained by BPTT at T steps (repeated input)."""
    import snntorch
    from snntorch import utils

    (x, y), (x_test, y_test) = data
    torch.manual_seed(args.seed)
    lif = snntorch.Leaky(beta=1.0, threshold=1.0, spike_grad=s2nn(), init_hidden=True)
    net = build(arch, 0.0, args.hidden, neuron=lif)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)

    def run(inputs: torch.Tensor) -> torch.Tensor:
        utils.reset(net)
        return torch.stack([net(inputs) for _ in range(T)]).mean(0)

    start = time.perf_counter()
    for _ in range(args.epochs):
        net.train()
        for idx in batches(len(x), args.batch_size, gen):
            loss = nn.functional.cross_entropy(run(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        accuracy = (run(x_test).argmax(1) == y_test).float().mean().item()
    return 100 * accuracy, seconds


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return 100 * (model(x).argmax(1) == y).float().mean().item()


def plot(rows: list[dict], steps: list[int], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = sorted({r["arch"] for r in rows})
    fig, axes = plt.subplots(1, len(archs), figsize=(5 * len(archs), 3.8), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        for i, r in enumerate(r for r in rows if r["arch"] == arch):
            ax.plot(steps, [r["acc"][str(n)] for n in steps], "o-", color=f"C{i}",
                    label=f"σ={r['sigma']} {r['conversion']}")
            ax.axhline(r["acc_t1"], color=f"C{i}", ls=":", lw=0.8)
        ax.set(xscale="log", xlabel="time steps N", ylabel="test accuracy (%)", title=arch)
        ax.set_xticks(steps, [str(n) for n in steps])
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a sanity run (few epochs, N ≤ 4)")
    parser.add_argument("--archs", nargs="+", default=["mlp", "mlp-bn"], choices=["mlp", "mlp-bn"])
    parser.add_argument("--sigma", type=float, default=0.4, help="training noise of the noisy net")
    parser.add_argument("--assume-sigma", type=float, default=0.4,
                        help="σ assumed by 'matched' for the net trained without noise")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--direct-steps", type=int, nargs="+", default=[2, 4, 8],
                        help="T of the nets trained directly at T steps (for the time ratio)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results", help="where the plot and JSON go")
    args = parser.parse_args()
    if args.quick:
        args.archs, args.epochs, args.steps, args.direct_steps = ["mlp"], 3, [1, 2, 4], [2]

    train, test = load_digits_split()
    data = (train.tensors, test.tensors)
    x_test, y_test = test.tensors
    rows: list[dict] = []
    times: dict[str, dict] = {}
    header = "".join(f"{'N=' + str(n):>7}" for n in args.steps)
    print(f"{'arch':<7} {'σ train':>7} {'conversion':<30} {'T=1 net':>7} |{header}")
    for arch in args.archs:
        for sigma in (0.0, args.sigma):
            net, seconds = train_single_step(arch, sigma, data, args)
            times.setdefault(arch, {})[f"single_step_sigma_{sigma}"] = seconds
            acc_t1 = accuracy(net, x_test, y_test)
            conversions = [("plain", "repeat", None), ("matched", "repeat", None),
                           ("matched", "rate", None)]
            if sigma == 0.0:
                conversions = [("plain", "repeat", None),
                               ("matched", "repeat", args.assume_sigma)]
            for mapping, encoding, assumed in conversions:
                acc = {}
                for n in args.steps:
                    model = to_multistep(net, n, mapping=mapping, encoding=encoding,
                                         noise_std=assumed,
                                         seed=args.seed if encoding == "rate" else None)
                    acc[str(n)] = accuracy(model, x_test, y_test)
                label = f"{mapping}/{encoding}" + (f" (σ={assumed} assumed)" if assumed else "")
                rows.append({"arch": arch, "sigma": sigma, "conversion": label,
                             "acc_t1": acc_t1, "acc": acc})
                cells = "".join(f"{acc[str(n)]:>7.2f}" for n in args.steps)
                print(f"{arch:<7} {sigma:>7.2f} {label:<30} {acc_t1:>7.2f} |{cells}", flush=True)

    print("\ntraining time, one run each (same epochs, batch, optimizer):")
    for arch in args.archs:
        t1 = times[arch][f"single_step_sigma_{args.sigma}"]
        print(f"  {arch}: T=1 with noise σ={args.sigma}: {t1:.1f} s")
        for n in args.direct_steps:
            acc_direct, seconds = train_direct(arch, n, data, args)
            times[arch][f"direct_T{n}"] = seconds
            times[arch][f"direct_T{n}_accuracy"] = acc_direct
            print(f"  {arch}: trained directly at T={n} (BPTT): {seconds:.1f} s, "
                  f"T={n} / T=1 time ratio {seconds / t1:.2f} (T=1 training takes "
                  f"{100 * (1 - t1 / seconds):.0f} % less time); its accuracy at T={n}: "
                  f"{acc_direct:.2f} %", flush=True)

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "noise_convert.json").write_text(
        json.dumps({"args": vars(args), "rows": rows, "times": times}, indent=2)
    )
    plot(rows, args.steps, out / "noise_convert.png")
    print(f"saved {out / 'noise_convert.png'} and {out / 'noise_convert.json'}")


if __name__ == "__main__":
    main()
