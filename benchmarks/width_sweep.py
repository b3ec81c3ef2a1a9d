"""The claims at several widths and layouts: the gap to the ANN, and accuracy per joule.

The same MNIST-1D 1D CNN as ``compare.py`` (three convolutions, kernel 5, BatchNorm before
each activation, Adam with cosine schedule), at each ``--widths`` channel count and each
``--layouts`` (``stride``: stride-2 convolutions; ``pool``: stride-1 convolutions +
``MaxPool1d(2)``), for every ``--models`` contender of ``compare.py`` and ``--seeds`` seeds.
Reports test accuracy (mean ± std), training accuracy, the gap to the same-width ANN, and the
estimated energy per sample (``energy_report``, 45 nm table); draws the accuracy/energy
frontier (``frontier_<dataset>.png``).

Runs are cached in ``width_<dataset>.json`` (written after every run, atomically): a run that
is stopped resumes where it was, and a later call with more widths/seeds/models only trains
what is missing. ``--report`` rewrites the table and the plot from the cache without training.

    python benchmarks/width_sweep.py --widths 32 64 128 --layouts stride pool --seeds 3
    python benchmarks/width_sweep.py --models "Leaky T=4" --widths 32 64 --layouts stride
    python benchmarks/width_sweep.py --quick     # 2 small widths, 1 seed, 1 epoch, 600 samples
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys

import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import compare  # noqa: E402  (the contenders, the net and the training loop)

from _cache import open_cache, save_cache  # noqa: E402
from snn_singlestep import S2Cell, S2Surrogate  # noqa: E402

DEFAULT_MODELS = ["ReLU ANN", "S2NN (ours)", "T=1 atan", "T=1 SJ Sigmoid"]


def contenders() -> dict[str, dict]:
    """``compare.py``'s contenders plus ``Leaky T=2`` (the frontier's cheapest multi-step net)
    and S²NN variants for the recipe's levers: the threshold θ after BatchNorm (0, 0.5, 2;
    the default is 1), a learnable threshold (one per layer, starting at 1), α=2 β=0.5, and
    β=0.5 (a lower tail, α=4)."""
    specs = compare.contenders()
    specs["Leaky T=2"] = {**specs["Leaky T=4"], "T": 2}
    for theta in (0.0, 0.5, 2.0):
        specs[f"S2NN θ={theta:g}"] = {**specs["S2NN (ours)"],
                                      "act": lambda theta=theta: S2Cell(threshold=theta)}
    specs["S2NN learnable θ"] = {**specs["S2NN (ours)"],
                                 "act": lambda: S2Cell(1.0, learn_threshold=True)}
    specs["S2NN α=2 β=0.5"] = {**specs["S2NN (ours)"],
                               "act": lambda: S2Cell(1.0, surrogate=S2Surrogate(2.0, 0.5))}
    specs["S2NN β=0.5"] = {**specs["S2NN (ours)"],
                           "act": lambda: S2Cell(1.0, surrogate=S2Surrogate(4.0, 0.5))}
    return specs


def key(layout: str, width: int, model: str, seed: int) -> str:
    return f"{layout}/{width}/{model}/{seed}"


def subset(data: TensorDataset, n: int) -> TensorDataset:
    return TensorDataset(*(t[:n] for t in data.tensors))


def summarize(cache: dict, layouts, widths, models, seeds) -> list[dict]:
    """One row per (layout, width, model) with every requested seed present."""
    rows = []
    for layout in layouts:
        for width in widths:
            for model in models:
                runs = [cache["runs"].get(key(layout, width, model, s)) for s in range(seeds)]
                runs = [r for r in runs if r is not None]
                if not runs:
                    continue
                acc = [100 * r["accuracy"] for r in runs]
                train = [100 * r["train_accuracy"] for r in runs]
                rows.append({
                    "layout": layout, "width": width, "model": model, "seeds": len(runs),
                    "acc_mean": statistics.mean(acc),
                    "acc_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                    "train_mean": statistics.mean(train),
                    "energy_nj": statistics.mean(r["energy_nj"] for r in runs),
                    "rate": None if runs[0]["rate"] is None
                    else statistics.mean(r["rate"] for r in runs),
                    "seconds": statistics.mean(r["seconds"] for r in runs),
                })
    return rows


def gap_rows(rows: list[dict]) -> list[dict]:
    """Adds ``gap``: the same-layout, same-width ANN's mean test accuracy minus this one's."""
    ann = {(r["layout"], r["width"]): r["acc_mean"] for r in rows if r["model"] == "ReLU ANN"}
    for r in rows:
        ref = ann.get((r["layout"], r["width"]))
        r["gap"] = None if ref is None else ref - r["acc_mean"]
    return rows


def markdown(rows: list[dict], dataset: str, args) -> str:
    lines = [
        f"**{dataset}**, {args.epochs} epochs, Adam {args.lr}"
        + (f" (weight decay {args.weight_decay})" if args.weight_decay else "")
        + f", batch {args.batch_size}; mean ± std over the seeds given in the table",
        "",
        "| layout | width | model | seeds | test acc % | train acc % | ANN − model (pt) "
        "| energy nJ/sample | hidden rate | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gap = "—" if r["gap"] is None or r["model"] == "ReLU ANN" else f"{r['gap']:+.2f}"
        rate = "—" if r["rate"] is None else f"{r['rate']:.3f}"
        lines.append(
            f"| {r['layout']} | {r['width']} | {r['model']} | {r['seeds']} | "
            f"{r['acc_mean']:.2f} ± {r['acc_std']:.2f} | {r['train_mean']:.2f} | {gap} | "
            f"{r['energy_nj']:,.1f} | {rate} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot_frontier(rows: list[dict], path: pathlib.Path, dataset: str) -> None:
    """Test accuracy against energy per sample: one line per (model, layout) across widths,
    the Pareto front of all points drawn underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, ax = plt.subplots(figsize=(8, 4.8))
    points = sorted(rows, key=lambda r: r["energy_nj"])
    front, best = [], -1.0
    for r in points:
        if r["acc_mean"] > best:
            front.append(r)
            best = r["acc_mean"]
    ax.step([r["energy_nj"] for r in front], [r["acc_mean"] for r in front], where="post",
            color="0.8", linewidth=6, zorder=0, label="Pareto front (all points)")
    markers = {"stride": "o", "pool": "s"}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["layout"]), []).append(r)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    for (model, layout), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["width"])
        ax.errorbar([r["energy_nj"] for r in rs], [r["acc_mean"] for r in rs],
                    yerr=[r["acc_std"] for r in rs], marker=markers.get(layout, "^"),
                    color=colors[models.index(model) % len(colors)], capsize=3,
                    linestyle="-" if layout == "stride" else "--", label=f"{model}, {layout}")
        for r in rs:
            ax.annotate(str(r["width"]), (r["energy_nj"], r["acc_mean"]), fontsize=6,
                        textcoords="offset points", xytext=(4, -8), color="0.35")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="estimated energy per sample (nJ, 45 nm; log scale)",
           ylabel="test accuracy (%)",
           title=f"{dataset}: accuracy against energy (numbers: channels; mean ± std)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--layouts", nargs="+", choices=compare.LAYOUTS, default=["stride"])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--weight-decay", type=float, help="Adam's weight_decay (L2)")
    parser.add_argument("--limit", type=int, help="use the first N training samples")
    parser.add_argument("--report", action="store_true", help="table and plot from the cache")
    parser.add_argument("--quick", action="store_true",
                        help="widths 8 16, 1 seed, 1 epoch, 600 training samples")
    parser.add_argument("--out", default="docs/benchmarks")
    args = parser.parse_args(argv)
    specs = contenders()
    unknown = sorted(set(args.models) - set(specs))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {sorted(specs)}")
    if args.quick:
        args.widths, args.seeds, args.epochs, args.limit = [8, 16], 1, 1, 600
    dataset = "mnist1d"
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = dataset + ("_quick" if args.quick else "")
    cache_path = out / f"width_{stem}.json"
    settings = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                "limit": args.limit}
    if args.weight_decay:  # (absent from caches made before the option)
        settings["weight_decay"] = args.weight_decay
    cache = open_cache(cache_path, settings, parser)

    # seed-major: a stopped sweep has whole seeds of every setting, not whole settings
    grid = [(seed, layout, width, model) for seed in range(args.seeds)
            for layout in args.layouts for width in args.widths for model in args.models]
    missing = [g for g in grid if key(*g[1:], g[0]) not in cache["runs"]]
    if missing and not args.report:
        train, test = compare.load(dataset)
        if args.limit:
            train = subset(train, args.limit)
        torch.set_num_threads(1)
        for seed, layout, width, model in missing:
            k = key(layout, width, model, seed)
            run = compare.train_one(dataset, specs[model], train, test, seed, args,
                                    width=width, layout=layout)
            cache["runs"][k] = run
            save_cache(cache_path, cache)
            print(f"{k:<40} test {100 * run['accuracy']:6.2f} %  train "
                  f"{100 * run['train_accuracy']:6.2f} %  {run['energy_nj']:8.1f} nJ  "
                  f"{run['seconds']:6.1f} s", flush=True)

    rows = gap_rows(summarize(cache, args.layouts, args.widths, args.models, args.seeds))
    table = markdown(rows, dataset, args)
    (out / f"width_{stem}.md").write_text(table)
    plot_frontier(rows, out / f"frontier_{stem}.png", dataset)
    print(table)


if __name__ == "__main__":
    main()
