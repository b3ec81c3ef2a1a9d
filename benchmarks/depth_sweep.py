"""Depth × surrogate × norm for pre-activation residual S²NNs on MNIST-1D: where the tail matters.

The S² derivation's distinctive part is its β/(1+x) tail above threshold; deep nets are where
gradient flow differs. This trains ``preact_resnet(depth, width=--width, norm=...)`` on MNIST-1D
(each sample a 1×1×40 image: the 3×3 convolutions act as 3-tap 1D filters) with every hidden
neuron's surrogate set to one of

* ``s2``: the reduced S² surrogate (α=4, β=1); ``s2-beta0.5``, ``s2-beta0.25``: the same with
  a lower tail β/(1+x) above threshold (the sigmoid side unchanged); ``s2-alpha2-beta0.5``:
  a lower tail with a matching, flatter sigmoid side (g' continuous at 0);
* ``sj-sigmoid``: SpikingJelly's ``Sigmoid(alpha=4)`` — the same derivative as S² below
  threshold, a sigmoid tail above it;
* ``atan``: snnTorch's ``atan()`` (α=2);

and reports test/train accuracy, hidden firing rates and the gradient norm of every
convolution's weight at initialisation and after training (one fixed batch of 256 training
samples, cross-entropy), as a table (``depth_<dataset>.md``), a JSON cache
(``depth_<dataset>.json``, written after every run; a stopped sweep resumes) and a plot of
gradient norm against layer index.

    python benchmarks/depth_sweep.py --depths 20 56 110 --surrogates s2 sj-sigmoid atan --norms psp
    python benchmarks/depth_sweep.py --depths 20 56 110 --surrogates s2 --norms psp batch --width 32
    python benchmarks/depth_sweep.py --report ...  # the table and plot of what the cache holds
    python benchmarks/depth_sweep.py --quick      # depth 20, width 4, 1 epoch, 400 samples
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys

import snntorch.surrogate
import torch
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import nn
from torch.utils.data import TensorDataset

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import compare  # noqa: E402  (MNIST-1D generated offline, the training recipe)

from snn_singlestep import S2Cell, S2Surrogate, preact_resnet  # noqa: E402
from _cache import open_cache, save_cache  # noqa: E402
from snn_singlestep.monitor import FiringRateMonitor  # noqa: E402

SURROGATES = {
    "s2": lambda: None,  # S2Cell's default: the reduced S² surrogate, α=4, β=1
    "s2-beta0.5": lambda: S2Surrogate(4.0, 0.5),  # the same sigmoid side, half the tail
    "s2-beta0.25": lambda: S2Surrogate(4.0, 0.25),
    "s2-alpha2-beta0.5": lambda: S2Surrogate(2.0, 0.5),  # continuous at 0 (α = 4β), flatter
    "sj-sigmoid": lambda: sj_surrogate.Sigmoid(alpha=4.0),
    "atan": lambda: snntorch.surrogate.atan(),
}


def with_surrogate(net: nn.Module, name: str) -> nn.Module:
    """Every S2Cell of ``net`` rebuilt with the named surrogate (same threshold)."""
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, S2Cell):
                fn = SURROGATES[name]()
                cell = S2Cell(float(child.threshold)) if fn is None else S2Cell(
                    float(child.threshold), surrogate=fn)
                setattr(module, child_name, cell)
    return net


def as_images(data: TensorDataset) -> TensorDataset:
    x, y = data.tensors
    return TensorDataset(x.view(-1, 1, 1, x.shape[-1]), y)


def grad_norms(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """‖∂L/∂W‖₂ of every convolution (stem first, in forward order) for one batch."""
    was = net.training
    net.train()
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    norms = [float(m.weight.grad.norm()) for m in net.modules() if isinstance(m, nn.Conv2d)]
    net.zero_grad()
    net.train(was)
    return norms


def run(depth: int, surrogate: str, norm: str, seed: int, train, test, args) -> dict:
    torch.manual_seed(seed)
    net = with_surrogate(preact_resnet(depth, 10, in_channels=1, width=args.width, norm=norm),
                         surrogate)
    probe_x, probe_y = (t[:256] for t in train.tensors)
    at_init = grad_norms(net, probe_x, probe_y)
    seconds = compare.fit(net, train, seed, args)
    after = grad_norms(net, probe_x, probe_y)
    net.eval()
    with torch.no_grad(), FiringRateMonitor(net) as monitor:
        net(test.tensors[0])
    rates = [r for name, r in monitor.rates().items() if name != "spike"]  # hidden layers
    return {
        "accuracy": compare.accuracy_of(net, test, 1),
        "train_accuracy": compare.accuracy_of(net, train, 1),
        "mean_rate": statistics.mean(rates),
        "dead_or_saturated": sum(r < 0.01 or r > 0.9 for r in rates) / len(rates),
        "grad_init": at_init, "grad_trained": after, "seconds": seconds,
    }


def key(depth: int, surrogate: str, norm: str, seed: int) -> str:
    return f"{depth}/{surrogate}/{norm}/{seed}"


def ratio(norms: list[float]) -> float:
    """First-conv over last-conv gradient norm: > 1 means the gradient grows toward the input."""
    return norms[0] / norms[-1] if norms[-1] > 0 else float("inf")


def table(cache: dict, depths, surrogates, norms, seeds, args) -> tuple[str, list[dict]]:
    lines = [
        f"**MNIST-1D**, preact_resnet width {args.width}, {args.epochs} epochs, Adam {args.lr}, "
        f"batch {args.batch_size}" + (f", gradient norm clipped to {args.clip}" if args.clip else "")
        + "; gradient norms on one batch of 256 training samples",
        "",
        "| depth | norm | surrogate | seeds | test acc % | train acc % | hidden rate | "
        "dead/sat. layers | ‖g‖ first/last conv, init | same, trained | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for depth in depths:
        for norm in norms:
            for sur in surrogates:
                runs = [cache["runs"].get(key(depth, sur, norm, s)) for s in range(seeds)]
                runs = [r for r in runs if r is not None]
                if not runs:
                    continue
                acc = [100 * r["accuracy"] for r in runs]
                row = {
                    "depth": depth, "norm": norm, "surrogate": sur, "seeds": len(runs),
                    "acc_mean": statistics.mean(acc),
                    "acc_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                    "train_mean": statistics.mean(100 * r["train_accuracy"] for r in runs),
                    "rate": statistics.mean(r["mean_rate"] for r in runs),
                    "dead": statistics.mean(r["dead_or_saturated"] for r in runs),
                    "ratio_init": statistics.mean(ratio(r["grad_init"]) for r in runs),
                    "ratio_trained": statistics.mean(ratio(r["grad_trained"]) for r in runs),
                    "seconds": statistics.mean(r["seconds"] for r in runs),
                }
                rows.append(row)
                lines.append(
                    f"| {depth} | {norm} | {sur} | {row['seeds']} | {row['acc_mean']:.2f} ± "
                    f"{row['acc_std']:.2f} | {row['train_mean']:.2f} | {row['rate']:.3f} | "
                    f"{row['dead']:.2f} | {row['ratio_init']:.3g} | {row['ratio_trained']:.3g} | "
                    f"{row['seconds']:.1f} |"
                )
    return "\n".join(lines) + "\n", rows


def plot(cache: dict, depths, surrogates, norms, path: pathlib.Path) -> None:
    """Gradient norm per convolution (seed 0), at init and trained, one panel per depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = [d for d in depths if any(key(d, s, n, 0) in cache["runs"]
                                       for s in surrogates for n in norms)]
    if not depths:
        return
    fig, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 3.6), squeeze=False)
    for ax, depth in zip(axes[0], depths):
        for i, (sur, norm) in enumerate((s, n) for n in norms for s in surrogates):
            r = cache["runs"].get(key(depth, sur, norm, 0))
            if r is None:
                continue
            layers = range(1, len(r["grad_init"]) + 1)
            ax.semilogy(layers, r["grad_init"], ":", color=f"C{i}")
            ax.semilogy(layers, r["grad_trained"], "-", color=f"C{i}", label=f"{sur}, {norm}")
        ax.set(title=f"depth {depth} (dotted: init, solid: trained)",
               xlabel="convolution index (input → output)", ylabel="‖∂L/∂W‖₂")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110])
    parser.add_argument("--surrogates", nargs="+", choices=sorted(SURROGATES),
                        default=["s2", "sj-sigmoid", "atan"])
    parser.add_argument("--norms", nargs="+", choices=["psp", "batch", "none"], default=["psp"])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--clip", type=float, help="clip the gradient norm to this value")
    parser.add_argument("--limit", type=int, help="use the first N training samples")
    parser.add_argument("--report", action="store_true",
                        help="table and plot from the cache, training nothing")
    parser.add_argument("--quick", action="store_true",
                        help="depth 20, width 4, 1 epoch, 400 training samples")
    parser.add_argument("--out", default="docs/benchmarks")
    args = parser.parse_args(argv)
    if args.quick:
        args.depths, args.width, args.epochs, args.seeds, args.limit = [20], 4, 1, 1, 400
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"depth_mnist1d_w{args.width}" + ("_quick" if args.quick else "")
    cache_path = out / f"{stem}.json"
    settings = {"width": args.width, "epochs": args.epochs, "lr": args.lr,
                "batch_size": args.batch_size, "limit": args.limit}
    if args.clip:  # (absent from caches made before the option)
        settings["clip"] = args.clip
    cache = open_cache(cache_path, settings, parser)
    grid = [(seed, depth, norm, sur) for seed in range(args.seeds) for depth in args.depths
            for norm in args.norms for sur in args.surrogates]
    missing = [g for g in grid if key(g[1], g[3], g[2], g[0]) not in cache["runs"]]
    if missing and not args.report:
        train, test = (as_images(d) for d in compare.load("mnist1d"))
        if args.limit:
            train = TensorDataset(*(t[: args.limit] for t in train.tensors))
        torch.set_num_threads(1)
        for seed, depth, norm, sur in missing:
            k = key(depth, sur, norm, seed)
            cache["runs"][k] = r = run(depth, sur, norm, seed, train, test, args)
            save_cache(cache_path, cache)
            print(f"{k:<28} test {100 * r['accuracy']:6.2f} %  train "
                  f"{100 * r['train_accuracy']:6.2f} %  rate {r['mean_rate']:.3f}  "
                  f"{r['seconds']:7.1f} s", flush=True)
    text, _ = table(cache, args.depths, args.surrogates, args.norms, args.seeds, args)
    (out / f"{stem}.md").write_text(text)
    plot(cache, args.depths, args.surrogates, args.norms, out / f"{stem}.png")
    print(text)


if __name__ == "__main__":
    main()
