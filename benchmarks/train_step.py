"""Training-step time and activation memory: ReLU ANN vs S²NN vs multi-step SNNs.

For an MLP (64-512-512-10) and a small CNN (1×8×8 → 32 → 64 channels), batch 256, prints
for each model the time of one training step (forward, backward, Adam) and the bytes that
autograd saves for backward, both as ratios to the ReLU ANN measured in the same run
(interleaved best-of timings; on CUDA also peak allocated memory). Contenders: ReLU ANN;
S²NN (ours, single step: ``S2Cell`` and snnTorch-style ``S2Neuron``); snnTorch ``Leaky``
at T = 1/4/8 (time loop); SpikingJelly ``LIFNode`` at T = 1/4/8 (step mode 'm').

Then (issue 16):

- the CLI's default net, ``Linear(no bias) → BatchNorm1d → S2Neuron`` 64-256-256-10 at
  batch 64 with Adam, step time as a ratio to the same net with ReLU;
- graph memory: the memory held by the autograd graph after one forward of a 4 × 2048 MLP
  (``Linear → BatchNorm1d → neuron``, batch 4096; ``--quick``: 4 × 256, batch 256), each
  net in a fresh process (growth of the resident set size over the forward, with glibc's
  mmap threshold pinned so that every activation is its own mapping), as a ratio to the
  ReLU ANN; contenders: ReLU ANN, S²NN (S2Neuron) and the same S²NN after SpikingJelly's
  ``memopt.optimize_memory`` (level 1: checkpointing and bit-compressed spikes).

The S² rows use the compiled backward kernel when it has been built (``snn-singlestep
build-kernel``, or ``--build-kernel`` here); the CLI table also shows the eager backward.

Targets (issue 7): S²NN ≤ 1.15× the ANN's step time and ≤ 1.2× its memory, and
≥ 0.8·T× faster than the same net at T steps. Issue 16: step ≤ 1.2× for the CLI net and
the MLP, graph memory ≤ 0.75×.

    python benchmarks/train_step.py --build-kernel   # full, with the compiled backward
    python benchmarks/train_step.py --quick   # sanity run, few rounds
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys

import snntorch as snn
import snntorch.utils
import torch
from _timing import interleaved_best, saved_tensor_bytes
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from snn_singlestep import S2Cell, S2Neuron
from snn_singlestep.core import kernel, set_fused_backward
from snn_singlestep.core.bitpack import spike_bits


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
    steps["S2NN S2Neuron"] = trainer(build(lambda: S2Neuron(init_hidden=True)), lambda n: n(x))
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


def cli_net(act, hidden=(256, 256)) -> nn.Module:
    """The CLI's default MLP (``SingleStepMLP``): no bias before BatchNorm, linear readout."""
    layers, width = [], 64
    for h in hidden:
        layers += [nn.Linear(width, h, bias=False), nn.BatchNorm1d(h), act()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10))


def cli_steps(batch: int = 64) -> dict[str, callable]:
    torch.manual_seed(0)
    x, y = torch.rand(batch, 64), torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    steps = {}
    contenders = (("ReLU ANN", nn.ReLU, "auto"),
                  ("S2NN S2Neuron", lambda: S2Neuron(init_hidden=True), "auto"),
                  ("S2NN S2Neuron, eager", lambda: S2Neuron(init_hidden=True), "off"))
    for name, act, backward in contenders:
        net = cli_net(act)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step(net=net, opt=opt, backward=backward):
            previous = set_fused_backward(backward)  # "off": eager S² backward, no kernel
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            opt.step()
            set_fused_backward(previous)

        steps[name] = step
    return steps


GRAPH_NETS = ("ReLU ANN", "S2NN S2Neuron", "S2NN + spike_bits", "S2NN + spike_bits(SJ packer)",
              "S2NN + SJ optimize_memory")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def graph_memory_child(name: str, width: int, depth: int, batch: int) -> None:
    """Runs in a fresh process: prints the bytes the graph of one forward holds."""
    torch.manual_seed(0)
    act = nn.ReLU if name == "ReLU ANN" else (lambda: S2Neuron(init_hidden=True))
    layers, w = [], width
    for _ in range(depth):
        layers += [nn.Linear(w, width), nn.BatchNorm1d(width), act()]
    net = nn.Sequential(*layers, nn.Linear(width, 10))
    x = torch.randn(batch, width)
    if name == "S2NN + SJ optimize_memory":
        from spikingjelly.activation_based import memopt

        memopt.optimize_memory(net, (nn.Linear,), lambda m: m(x), level=1)

    def context():
        if name == "S2NN + spike_bits":
            return spike_bits()
        if name == "S2NN + spike_bits(SJ packer)":
            from spikingjelly.activation_based.memopt.compress import BitSpikeCompressor

            return spike_bits(BitSpikeCompressor())
        return contextlib.nullcontext()

    for _ in range(2):  # warm up the same code paths: parameter grads, allocator, kernels
        with context():
            out = net(x)
        out.sum().backward()
    for p in net.parameters():
        p.grad = None
    del out
    before = _rss_bytes()
    with context():
        out = net(x)
    held = _rss_bytes() - before
    del out
    print(f"graph-bytes {held}")


def graph_memory(width: int, depth: int, batch: int) -> dict[str, int]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    held = {}
    for name in GRAPH_NETS:
        out = subprocess.run(
            [sys.executable, __file__, "--graph-memory-child", name, str(width), str(depth),
             str(batch)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
        held[name] = int(out.split("graph-bytes")[1].split()[0])
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--build-kernel", action="store_true",
                        help="build the compiled S2 backward first if it is not there")
    parser.add_argument("--graph-memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.graph_memory_child:
        name, *sizes = args.graph_memory_child
        graph_memory_child(name, *map(int, sizes))
        return
    if args.build_kernel:
        print(f"built {kernel.build_kernel()}")
    found = kernel.loaded_kernel() is not None
    print(f"compiled S2 backward kernel (snn-singlestep build-kernel): "
          f"{'loaded from ' + str(kernel.kernel_path()) if found else 'not built, eager backward'}")
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

    batch = 16 if args.quick else 64
    times = interleaved_best(cli_steps(batch), rounds=rounds * 2, inner=inner * 2)
    base = times["ReLU ANN"]
    print(f"\nDefault CLI net 64-256-256-10 (batch {batch}, Adam): step time, "
          "ratio to the ReLU ANN")
    print(f"{'model':<24} {'step ms':>8} {'time ×':>7}")
    for name, t in times.items():
        print(f"{name:<24} {1e3 * t:>8.3f} {t / base:>7.2f}")

    width, depth, batch = (256, 4, 256) if args.quick else (2048, 4, 4096)
    held = graph_memory(width, depth, batch)
    base = held["ReLU ANN"]
    print(f"\nGraph memory after one forward, {depth} x {width} MLP, batch {batch}, "
          "one fresh process per net (target <= 0.75x)")
    print(f"{'model':<26} {'graph MiB':>10} {'memory ×':>9}")
    for name, b in held.items():
        print(f"{name:<26} {b / 2**20:>10.2f} {b / base:>9.2f}")


if __name__ == "__main__":
    main()
