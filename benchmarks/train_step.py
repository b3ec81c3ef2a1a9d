"""Training-step time and activation memory: ReLU ANN vs S²NN vs multi-step SNNs.

For an MLP (64-512-512-10) and a small CNN (1×8×8 → 32 → 64 channels), batch 256, prints
for each model the time of one training step (forward, backward, Adam) and the bytes that
autograd saves for backward, both as ratios to the ReLU ANN measured in the same run
(interleaved best-of timings; on CUDA also peak allocated memory). Contenders: ReLU ANN;
S²NN (ours, single step); snnTorch ``Leaky`` at T = 1/4/8 (time loop); SpikingJelly
``LIFNode`` at T = 1/4/8 (step mode 'm').

Targets (issue 7): S²NN ≤ 1.15× the ANN's step time and ≤ 1.2× its memory, and
≥ 0.8·T× faster than the same net at T steps.

    python benchmarks/train_step.py           # full
    python benchmarks/train_step.py --quick   # sanity run, few rounds
"""

from __future__ import annotations

import argparse

import snntorch as snn
import snntorch.utils
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from _timing import interleaved_best, saved_tensor_bytes
from snn_singlestep import S2Cell


def mlp(act) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 512), nn.BatchNorm1d(512), act(),
        nn.Linear(512, 512), nn.BatchNorm1d(512), act(),
        nn.Linear(512, 10),
    )


def cnn(act) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), act(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), act(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 10),
    )


def sj_mlp() -> nn.Module:
    return nn.Sequential(
        layer.Linear(64, 512), layer.BatchNorm1d(512), neuron.LIFNode(),
        layer.Linear(512, 512), layer.BatchNorm1d(512), neuron.LIFNode(),
        layer.Linear(512, 10),
    )


def sj_cnn() -> nn.Module:
    return nn.Sequential(
        layer.Conv2d(1, 32, 3, padding=1), layer.BatchNorm2d(32), neuron.LIFNode(),
        layer.Conv2d(32, 64, 3, padding=1), layer.BatchNorm2d(64), neuron.LIFNode(),
        layer.MaxPool2d(2), layer.Flatten(), layer.Linear(64 * 4 * 4, 10),
    )


def make_steps(kind: str, batch: int) -> dict[str, callable]:
    torch.manual_seed(0)
    x = torch.rand(batch, 64) if kind == "mlp" else torch.rand(batch, 1, 8, 8)
    y = torch.randint(0, 10, (batch,))
    build = mlp if kind == "mlp" else cnn
    loss_fn = nn.CrossEntropyLoss()
    steps = {}

    def trainer(net, forward):
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            loss_fn(forward(net), y).backward()
            opt.step()

        return step

    steps["ReLU ANN"] = trainer(build(nn.ReLU), lambda n: n(x))
    steps["S2NN (ours)"] = trainer(build(S2Cell), lambda n: n(x))
    for T in (1, 4, 8):
        leaky = build(lambda: snn.Leaky(beta=0.9, init_hidden=True))

        def run_leaky(n, T=T):
            snntorch.utils.reset(n)
            return torch.stack([n(x) for _ in range(T)]).mean(0)

        steps[f"snnTorch Leaky T={T}"] = trainer(leaky, run_leaky)
        sj = sj_mlp() if kind == "mlp" else sj_cnn()
        functional.set_step_mode(sj, "m")
        x_seq = x.unsqueeze(0).repeat(T, *[1] * x.ndim)

        def run_sj(n, x_seq=x_seq):
            functional.reset_net(n)
            return n(x_seq).mean(0)

        steps[f"SpikingJelly LIF T={T}"] = trainer(sj, run_sj)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    rounds, inner = (2, 2) if args.quick else (12, 5)
    if args.quick:
        args.batch_size = min(args.batch_size, 32)
    for kind in ("mlp", "cnn"):
        steps = make_steps(kind, args.batch_size)
        times = interleaved_best(steps, rounds=rounds, inner=inner)
        memory = {name: saved_tensor_bytes(step) for name, step in steps.items()}
        base_t, base_m = times["ReLU ANN"], memory["ReLU ANN"]
        print(f"\n{kind.upper()} (batch {args.batch_size}), ratios to the ReLU ANN of this run")
        print(f"{'model':<24} {'step ms':>8} {'time ×':>7} {'saved MiB':>10} {'memory ×':>9}")
        for name in steps:
            print(f"{name:<24} {1e3 * times[name]:>8.2f} {times[name] / base_t:>7.2f} "
                  f"{memory[name] / 2**20:>10.2f} {memory[name] / base_m:>9.2f}")
        s2 = times["S2NN (ours)"]
        for T in (4, 8):
            for fw in ("snnTorch Leaky", "SpikingJelly LIF"):
                speedup = times[f"{fw} T={T}"] / s2
                print(f"  S2NN is {speedup:.2f}x faster than {fw} T={T} "
                      f"(target >= {0.8 * T:.1f}x)")


if __name__ == "__main__":
    main()
