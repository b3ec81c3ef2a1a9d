"""Forward+backward throughput of spike surrogates on large tensors.

Ours (S², fused backward and eager backward) against SpikingJelly's ``S2NN``, ``Sigmoid``
and ``ATan`` and snnTorch's ``atan``, on 1e6 and 1e7 elements, as ratios to SpikingJelly's
``Sigmoid`` measured in the same run (interleaved best-of). Target (issue 7): ours ≤ 1.5×
SpikingJelly Sigmoid.

    python benchmarks/surrogate.py            # 1e6 and 1e7 elements
    python benchmarks/surrogate.py --quick    # 1e5 elements, few rounds
"""

from __future__ import annotations

import argparse

import snntorch.surrogate
import torch
from spikingjelly.activation_based import surrogate as sj

from _timing import interleaved_best
from snn_singlestep.core import S2Surrogate, set_fused_backward


def contenders() -> dict[str, tuple[callable, str]]:
    ours = S2Surrogate()
    return {
        "S2 ours (fused bwd)": (ours, "auto"),
        "S2 ours (eager bwd)": (ours, "off"),
        "SJ S2NN": (sj.S2NN(), "auto"),
        "SJ Sigmoid": (sj.Sigmoid(), "auto"),
        "SJ ATan": (sj.ATan(), "auto"),
        "snnTorch atan": (snntorch.surrogate.atan(), "auto"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    sizes = [10**5] if args.quick else [10**6, 10**7]
    rounds = 2 if args.quick else 8
    for n in sizes:
        x = torch.randn(n, device=args.device, requires_grad=True)
        grad = torch.randn(n, device=args.device)
        fns = {}
        for name, (fn, mode) in contenders().items():
            def step(fn=fn, mode=mode):
                set_fused_backward(mode)
                x.grad = None
                fn(x).backward(grad)
            fns[name] = step
        times = interleaved_best(fns, rounds=rounds, inner=3)
        set_fused_backward("auto")
        base = times["SJ Sigmoid"]
        print(f"\n{n:.0e} elements on {args.device}: forward+backward, ratio to SJ Sigmoid")
        print(f"{'surrogate':<22} {'ms':>8} {'×':>6} {'Gelem/s':>8}")
        for name, t in times.items():
            print(f"{name:<22} {1e3 * t:>8.3f} {t / base:>6.2f} {n / t / 1e9:>8.3f}")


if __name__ == "__main__":
    main()
