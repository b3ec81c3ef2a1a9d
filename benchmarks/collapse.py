"""Benchmark of ``collapse``: conversion time, training-step speed, and digits accuracy.

Prints, measured in one run on this machine:

1. For spiking_resnet18, sew_resnet18 and spiking_vgg11_bn (SpikingJelly model zoo, LIF
   neurons): the time ``snn_singlestep.spikingjelly.collapse`` takes (copy included), and
   the ratio of the collapsed net's forward+backward time at T=1 to the original's at T=4
   (targets: conversion < 2 s, ratio <= 0.3). The two nets are timed interleaved; the
   ratio uses the fastest repeat of each (the least disturbed by other processes on a shared
   machine), the median ratio is printed too.
2. Digits (scikit-learn 8x8): a SpikingJelly conv net trained at T=4, then collapsed
   exactly and with threshold calibration, before and after one epoch of fine-tuning at T=1.

Run ``python benchmarks/collapse.py`` (full) or ``python benchmarks/collapse.py --quick``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from spikingjelly.activation_based import functional, layer, neuron
from spikingjelly.activation_based.model import sew_resnet, spiking_resnet, spiking_vgg
from torch import nn

import snn_singlestep as ss

warnings.filterwarnings("ignore", message=".*CUDA.*")

MODELS = {
    "spiking_resnet18": lambda: spiking_resnet.spiking_resnet18(
        spiking_neuron=neuron.LIFNode, num_classes=10
    ),
    "sew_resnet18": lambda: sew_resnet.sew_resnet18(
        spiking_neuron=neuron.LIFNode, num_classes=10, cnf="ADD"
    ),
    "spiking_vgg11_bn": lambda: spiking_vgg.spiking_vgg11_bn(
        spiking_neuron=neuron.LIFNode, num_classes=10
    ),
}


def _step_original(net: nn.Module, x: torch.Tensor, T: int) -> None:
    functional.reset_net(net)
    out = net(x.unsqueeze(0).repeat(T, *([1] * x.ndim))).mean(0)
    out.square().mean().backward()


def _step_collapsed(net: nn.Module, x: torch.Tensor) -> None:
    net(x).square().mean().backward()


def speed(name: str, *, batch: int, size: int, repeats: int, T: int = 4) -> dict:
    """Conversion time and T=1 / T=T training-step time ratio for one zoo model."""
    torch.manual_seed(0)
    net = MODELS[name]()
    functional.set_step_mode(net, "m")
    t0 = time.perf_counter()
    single = ss.spikingjelly.collapse(net)
    convert_s = time.perf_counter() - t0
    net.train()
    single.train()
    x = torch.rand(batch, 3, size, size)
    for _ in range(2):  # warm-up: allocator, oneDNN primitives, the fused S2 backward's compile
        _step_original(net, x, T)
        _step_collapsed(single, x)
    t_orig, t_single = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        t0 = time.perf_counter()
        _step_original(net, x, T)
        t_orig.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _step_collapsed(single, x)
        t_single.append(time.perf_counter() - t0)
        net.zero_grad(set_to_none=True)
        single.zero_grad(set_to_none=True)
    orig, one = min(t_orig), min(t_single)
    median_ratio = statistics.median(t_single) / statistics.median(t_orig)
    return {
        "model": name,
        "convert_s": convert_s,
        "orig_T": T,
        "orig_s": orig,
        "single_s": one,
        "ratio": one / orig,
        "median_ratio": median_ratio,
    }


# --- digits -----------------------------------------------------------------------------


def digits_split(seed: int = 0):
    """sklearn digits as [N, 1, 8, 8] in [0, 1]; 1437 train / 360 test images."""
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:1437], perm[1437:]
    return x[tr], y[tr], x[te], y[te]


def digits_net() -> nn.Sequential:
    """Conv-BN-LIF ×2 with a membrane (linear) readout; multi-step SpikingJelly net."""
    lif = lambda: neuron.LIFNode(tau=2.0, detach_reset=True)
    net = nn.Sequential(
        layer.Conv2d(1, 16, 3, padding=1, bias=False),
        layer.BatchNorm2d(16),
        lif(),
        layer.MaxPool2d(2),
        layer.Conv2d(16, 32, 3, padding=1, bias=False),
        layer.BatchNorm2d(32),
        lif(),
        layer.MaxPool2d(2),
        layer.Flatten(),
        layer.Linear(128, 10),
    )
    functional.set_step_mode(net, "m")
    return net


def _multi_step(net: nn.Module, x: torch.Tensor, T: int) -> torch.Tensor:
    functional.reset_net(net)
    return net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1)).mean(0)


def _train(net, forward, x, y, *, epochs: int, lr: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(forward(net, x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()


def _accuracy(forward, x, y) -> float:
    with torch.no_grad():
        return float((forward(x).argmax(1) == y).float().mean())


def digits_evidence(
    *, T: int = 4, epochs: int = 8, seed: int = 0, calib_samples: int = 512
) -> dict:
    """Accuracies of one digits net: T=4, exact and calibrated collapse, ±1 epoch at T=1.

    Runs on one CPU thread (faster for this small net, and reproducible: the numbers do not
    depend on the machine's thread count).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _digits_evidence(T=T, epochs=epochs, seed=seed, calib_samples=calib_samples)
    finally:
        torch.set_num_threads(threads)


def _digits_evidence(*, T: int, epochs: int, seed: int, calib_samples: int) -> dict:
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = digits_split()
    net = digits_net()
    _train(net, lambda n, x: _multi_step(n, x, T), xtr, ytr, epochs=epochs, lr=1e-2, seed=seed)
    res = {"T": T, "multi_step": _accuracy(lambda x: _multi_step(net, x, T), xte, yte)}
    one_step = lambda n, x: n(x)
    for mode in ("exact", "calibrated"):
        kwargs = {"data": [xtr[:calib_samples]], "T": T} if mode == "calibrated" else {}
        single, report = ss.spikingjelly.collapse(net, mode=mode, return_report=True, **kwargs)
        single.eval()
        res[mode] = _accuracy(single, xte, yte)
        with torch.no_grad():
            rates: list[float] = []

            def record(module, inputs, output, rates=rates):
                rates.append(float(output.mean()))

            hooks = [
                m.register_forward_hook(record)
                for m in single.modules()
                if isinstance(m, ss.S2Node)
            ]
            single(xte)
            for h in hooks:
                h.remove()
        res[f"{mode}_rates"] = rates
        if mode == "calibrated":
            res["target_rates"] = [c.target_rate for c in report.calibration]
        _train(single, one_step, xtr, ytr, epochs=1, lr=1e-3, seed=seed + 1)
        res[f"{mode}_finetuned"] = _accuracy(single, xte, yte)
    return res


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sanity run (seconds, not minutes)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads for the speed runs"
    )
    parser.add_argument("--seeds", type=int, default=3, help="digits runs (seeds 0, 1, ...)")
    args = parser.parse_args(argv)
    if args.quick:  # a sanity run: one thread and the eager S2 backward (no compile wait)
        torch.set_num_threads(args.threads or 1)
        ss.core.set_fused_backward("off")
    elif args.threads:
        torch.set_num_threads(args.threads)
    batches, size, repeats = ((4,), 32, 2) if args.quick else ((32, 64), 32, 7)
    print(
        f"collapse speed: {size}x{size} input, forward+backward (best of {repeats}, "
        f"interleaved), {torch.get_num_threads()} threads, fused S2 backward: "
        f"{ss.core.get_fused_backward()}"
    )
    print(
        f"{'model':<18} {'batch':>5} {'convert [s]':>11} {'T=4 step [s]':>13} {'T=1 step [s]':>13} "
        f"{'ratio':>7} {'median ratio':>13}"
    )
    for batch in batches:
        for name in MODELS:
            r = speed(name, batch=batch, size=size, repeats=repeats)
            print(
                f"{name:<18} {batch:>5} {r['convert_s']:>11.3f} {r['orig_s']:>13.4f} "
                f"{r['single_s']:>13.4f} {r['ratio']:>7.3f} {r['median_ratio']:>13.3f}"
            )
    epochs, seeds = (2, 1) if args.quick else (8, args.seeds)
    fmt = lambda v: f"{100 * v:5.1f} %"
    for seed in range(seeds):
        print(
            f"\ndigits (8x8, 360 test images), conv net trained {epochs} epochs at T=4, "
            f"seed {seed}:"
        )
        r = digits_evidence(epochs=epochs, seed=seed)
        print(f"  multi-step T=4                 {fmt(r['multi_step'])}")
        print(
            f"  {'':<30} {'no fine-tuning':>14} {'1 epoch at T=1':>15}   hidden firing rates (T=1)"
        )
        for mode in ("exact", "calibrated"):
            rates = ", ".join(f"{v:.3f}" for v in r[f"{mode}_rates"])
            print(
                f"  collapsed, {mode:<19} {fmt(r[mode]):>14} "
                f"{fmt(r[mode + '_finetuned']):>15}   {rates}"
            )
        targets = ", ".join(f"{v:.3f}" for v in r["target_rates"])
        print(f"  multi-step mean firing rates (calibration targets): {targets}")


if __name__ == "__main__":
    main()
