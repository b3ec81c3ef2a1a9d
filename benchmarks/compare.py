"""The seed papers' claims, side by side: ANN vs S²NN vs other neurons, same net and budget.

Trains the same architecture with several activations/neurons for ``--seeds`` seeds and
prints mean ± std test accuracy, mean hidden firing rate, SynOps and MACs per sample,
estimated energy per sample (45 nm table) and training time:

* ``ReLU ANN`` — full precision;
* ``S2NN`` — ours, single step, S² surrogate (α=4, β=1), BatchNorm before each neuron;
* ``S2NN + PSP`` — the same with PSP normalization instead of BatchNorm;
* ``T=1 atan``/``T=1 fast-sigmoid`` (snnTorch) and ``T=1 SJ Sigmoid``/``T=1 SJ ATan``
  (SpikingJelly) — the same single-step neuron with another surrogate gradient;
* ``sign + STE`` — a BNN-style ±1 activation with the clipped straight-through estimator;
* ``Leaky T=4``/``Leaky T=8`` — snnTorch ``Leaky`` (β=0.9) run for T steps on the repeated input.

Data: ``digits`` (scikit-learn, 8×8, MLP 64-256-256-10) and ``mnist1d`` (the ``mnist1d``
package generates 4000/1000 samples of length 40 offline; 1D CNN with three 32-channel
convolutions). Writes ``compare_<dataset>.md`` (a markdown table), ``.json`` and a plot of
accuracy against energy into ``--out``.

    python benchmarks/compare.py --dataset mnist1d --seeds 3 --epochs 40
    python benchmarks/compare.py --quick      # digits, 1 seed, 1 epoch: a sanity run
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import time
from typing import Callable

import snntorch as snn
import snntorch.surrogate
import snntorch.utils
import torch
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from snn_singlestep import S2Cell
from snn_singlestep.core.psp import PSPNorm
from snn_singlestep.energy import energy_report


class SignSTE(torch.autograd.Function):
    """sign(x) ∈ {−1, +1} forward; gradient 1 on |x| ≤ 1, else 0 (Courbariaux et al.)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class Sign(nn.Module):
    def forward(self, x):
        return SignSTE.apply(x)


def single_step(surrogate: Callable) -> Callable[[], nn.Module]:
    return lambda: S2Cell(threshold=1.0, surrogate=surrogate)


def contenders() -> dict[str, dict]:
    """name → how to build the activation, the norm and how many steps to run."""
    return {
        "ReLU ANN": {"act": nn.ReLU, "norm": "batch", "T": 1},
        "S2NN (ours)": {"act": lambda: S2Cell(threshold=1.0), "norm": "batch", "T": 1},
        "S2NN + PSP": {"act": lambda: S2Cell(threshold=1.0), "norm": "psp", "T": 1},
        "T=1 atan": {"act": single_step(snntorch.surrogate.atan()), "norm": "batch", "T": 1},
        "T=1 fast-sigmoid": {"act": single_step(snntorch.surrogate.fast_sigmoid()), "norm": "batch", "T": 1},
        "T=1 SJ Sigmoid": {"act": single_step(sj_surrogate.Sigmoid()), "norm": "batch", "T": 1},
        "T=1 SJ ATan": {"act": single_step(sj_surrogate.ATan()), "norm": "batch", "T": 1},
        "sign + STE": {"act": Sign, "norm": "batch", "T": 1},
        "Leaky T=4": {"act": lambda: snn.Leaky(beta=0.9, init_hidden=True), "norm": "batch", "T": 4},
        "Leaky T=8": {"act": lambda: snn.Leaky(beta=0.9, init_hidden=True), "norm": "batch", "T": 8},
    }


def _norm(kind: str, channels: int) -> nn.Module:
    return PSPNorm(channels) if kind == "psp" else (
        nn.BatchNorm1d(channels)
    )


LAYOUTS = ("stride", "pool")


def build(dataset: str, act: Callable[[], nn.Module], norm: str, width: int = 32,
          layout: str = "stride") -> nn.Module:
    """The benchmark net. ``digits``: MLP 64-256-256-10. ``mnist1d``: three 1D convolutions
    of ``width`` channels (kernel 5), each conv → norm → activation, then a linear readout;
    ``layout="stride"`` downsamples by stride-2 convolutions, ``"pool"`` by stride-1
    convolutions each followed by ``MaxPool1d(2)`` after the activation (40 → 20 → 10 → 5
    either way)."""
    if dataset == "digits":
        return nn.Sequential(
            nn.Linear(64, 256, bias=False), _norm(norm, 256), act(),
            nn.Linear(256, 256, bias=False), _norm(norm, 256), act(),
            nn.Linear(256, 10),
        )
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    layers: list[nn.Module] = [nn.Unflatten(1, (1, 40))]
    channels = 1
    for _ in range(3):
        stride = 2 if layout == "stride" else 1
        layers += [nn.Conv1d(channels, width, 5, stride=stride, padding=2, bias=False),
                   _norm(norm, width), act()]
        if layout == "pool":
            layers.append(nn.MaxPool1d(2))
        channels = width
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * 5, 10))


def load(dataset: str) -> tuple[TensorDataset, TensorDataset]:
    if dataset == "digits":
        from snn_singlestep.app.data import load_digits_split

        return load_digits_split()
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    as_ds = lambda x, y: TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))  # noqa: E731
    return as_ds(d["x"], d["y"]), as_ds(d["x_test"], d["y_test"])


def run_model(net: nn.Module, x: torch.Tensor, steps: int) -> torch.Tensor:
    if steps == 1:
        return net(x)
    snntorch.utils.reset(net)
    return torch.stack([net(x) for _ in range(steps)]).mean(0)


def accuracy_of(net: nn.Module, data: TensorDataset, steps: int) -> float:
    net.eval()
    x, y = data.tensors
    with torch.no_grad():
        return (run_model(net, x, steps).argmax(1) == y).float().mean().item()


def fit(net: nn.Module, train: TensorDataset, seed: int, args, steps: int = 1) -> float:
    """The benchmarks' training recipe: ``args.epochs`` of Adam (``args.lr``, L2
    ``args.weight_decay`` if set) with a cosine
    schedule, cross-entropy, batches of ``args.batch_size`` shuffled by a generator seeded
    with ``seed``, the gradient norm clipped to ``args.clip`` if that is set; a multi-step net
    runs ``steps`` steps per batch. Returns the seconds."""
    opt = torch.optim.Adam(net.parameters(), lr=args.lr,
                           weight_decay=getattr(args, "weight_decay", None) or 0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    for _ in range(args.epochs):
        net.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(run_model(net, x, steps), y)
            opt.zero_grad()
            loss.backward()
            if getattr(args, "clip", None):
                nn.utils.clip_grad_norm_(net.parameters(), args.clip)
            opt.step()
        sched.step()
    return time.perf_counter() - start


def train_one(dataset, spec, train, test, seed, args, width: int = 32,
              layout: str = "stride") -> dict:
    torch.manual_seed(seed)
    net = build(dataset, spec["act"], spec["norm"], width, layout)
    seconds = fit(net, train, seed, args, spec["T"])
    accuracy = accuracy_of(net, test, spec["T"])
    train_accuracy = accuracy_of(net, train, spec["T"])
    batch = test.tensors[0][:100]
    if spec["T"] == 1:
        report = energy_report(net, batch)
    else:
        report = energy_report(net, batch.unsqueeze(0).repeat(spec["T"], *[1] * batch.ndim),
                               steps=spec["T"])
    return {
        "accuracy": accuracy, "train_accuracy": train_accuracy, "seconds": seconds,
        "rate": report.mean_firing_rate,
        "macs": report.macs / report.batch_size, "synops": report.synops / report.batch_size,
        "energy_nj": report.energy_per_sample_pj() / 1e3,
    }


def summarize(name: str, runs: list[dict]) -> dict:
    acc = [100 * r["accuracy"] for r in runs]
    out = {"model": name, "acc_mean": statistics.mean(acc),
           "acc_std": statistics.stdev(acc) if len(acc) > 1 else 0.0, "runs": runs}
    for key in ("rate", "macs", "synops", "energy_nj", "seconds"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = statistics.mean(values) if values else None
    return out


def markdown(rows: list[dict], dataset: str, args) -> str:
    lines = [
        f"**{dataset}**, {args.seeds} seed(s), {args.epochs} epochs, Adam {args.lr}, batch {args.batch_size}",
        "",
        "| model | test acc % (mean ± std) | hidden firing rate | MACs/sample | SynOps/sample | energy nJ/sample | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = "—" if r["rate"] is None else f"{r['rate']:.3f}"
        lines.append(
            f"| {r['model']} | {r['acc_mean']:.2f} ± {r['acc_std']:.2f} | {rate} | {r['macs']:,.0f} | "
            f"{r['synops']:,.0f} | {r['energy_nj']:,.1f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: pathlib.Path, dataset: str) -> None:
    """Accuracy against energy, one marker per model named in the legend (no labels on the
    points: several single-step surrogates sit within a few nJ of each other)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    markers = "os^Dv<>pPX*h"
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, r in enumerate(sorted(rows, key=lambda r: r["energy_nj"])):
        ax.errorbar(r["energy_nj"], r["acc_mean"], yerr=r["acc_std"], fmt=markers[i % len(markers)],
                    capsize=3, markersize=6, label=f"{r['model']} ({r['energy_nj']:.0f} nJ)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="energy per sample (nJ, 45 nm; log scale)", ylabel="test accuracy (%)",
           title=f"{dataset}: accuracy against estimated energy (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["digits", "mnist1d"], default="digits")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", nargs="+", help="subset of the contenders, by name")
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch")
    parser.add_argument("--out", default="docs/benchmarks")
    parser.add_argument("--replot", metavar="JSON",
                        help="redraw the plot from a results file of an earlier run, then stop")
    args = parser.parse_args()
    if args.replot:
        source = pathlib.Path(args.replot)
        plot(json.loads(source.read_text()), source.with_suffix(".png"), args.dataset)
        return
    if args.quick:
        args.seeds, args.epochs = 1, 1
    specs = contenders()
    if args.models:
        unknown = sorted(set(args.models) - set(specs))
        if unknown:
            parser.error(f"unknown model(s) {unknown}; choose from {sorted(specs)}")
        specs = {k: v for k, v in specs.items() if k in args.models}
    train, test = load(args.dataset)
    rows = []
    for name, spec in specs.items():
        runs = [train_one(args.dataset, spec, train, test, seed, args) for seed in range(args.seeds)]
        rows.append(summarize(name, runs))
        r = rows[-1]
        print(f"{name:<18} {r['acc_mean']:6.2f} ± {r['acc_std']:.2f} %  energy {r['energy_nj']:8.1f} nJ  "
              f"{r['seconds']:6.1f} s", flush=True)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"compare_{args.dataset}" + ("_quick" if args.quick else "")
    (out / f"{stem}.md").write_text(markdown(rows, args.dataset, args))
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=2))
    plot(rows, out / f"{stem}.png", args.dataset)
    print(markdown(rows, args.dataset, args))


if __name__ == "__main__":
    main()
