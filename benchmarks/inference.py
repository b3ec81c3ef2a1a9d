"""Inference latency: S²NN vs the same ReLU ANN vs a T=4 multi-step SNN, three runtimes.

For an MLP (64-512-512-10) and, without ``--quick``, a small CNN (1×8×8 → 32 → 64
channels → 10), at batch 1 and batch 256, prints the time of one forward pass (eval mode,
no autograd) of

- the ReLU ANN and the S²NN (same layers, BatchNorm, ``S2Cell`` in place of ``ReLU``) in
  torch eager, ``torch.compile`` and onnxruntime (exported with
  ``snn_singlestep.export.to_onnx``, CPU provider);
- the same net at T=4 with SpikingJelly ``LIFNode`` in step mode ``'m'`` (input repeated
  4 times, output averaged, ``reset_net`` after each call) in torch eager;
- the S²NN with snnTorch-style ``S2Neuron`` and SpikingJelly ``S2Node`` neurons in torch
  eager (their lean no-grad path; issue 16's goal: ≤ 1.3× the ANN at batch 1);

as ratios measured in the same run (interleaved best-of timing, so that load on a shared
machine hits every contender alike): S²NN / ANN per runtime, and T=4 / S²NN in eager.
Threads: ``--threads`` for torch and onnxruntime alike (default 1).

    python benchmarks/inference.py           # MLP and CNN, 20 rounds
    python benchmarks/inference.py --quick   # MLP only, few rounds
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from _timing import interleaved_best
from snn_singlestep import S2Cell, S2Neuron, S2Node
from snn_singlestep.export import to_onnx

warnings.filterwarnings("ignore")
T_MULTI = 4


def mlp(act) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 512),
        nn.BatchNorm1d(512),
        act(),
        nn.Linear(512, 512),
        nn.BatchNorm1d(512),
        act(),
        nn.Linear(512, 10),
    )


def cnn(act) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        act(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        act(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 10),
    )


def sj(kind: str) -> nn.Module:
    if kind == "mlp":
        net = nn.Sequential(
            layer.Linear(64, 512),
            layer.BatchNorm1d(512),
            neuron.LIFNode(),
            layer.Linear(512, 512),
            layer.BatchNorm1d(512),
            neuron.LIFNode(),
            layer.Linear(512, 10),
        )
    else:
        net = nn.Sequential(
            layer.Conv2d(1, 32, 3, padding=1),
            layer.BatchNorm2d(32),
            neuron.LIFNode(),
            layer.Conv2d(32, 64, 3, padding=1),
            layer.BatchNorm2d(64),
            neuron.LIFNode(),
            layer.MaxPool2d(2),
            layer.Flatten(),
            layer.Linear(64 * 4 * 4, 10),
        )
    functional.set_step_mode(net, "m")
    return net.eval()


def _calibrated(net: nn.Module, x: torch.Tensor) -> nn.Module:
    """BatchNorm statistics from a few batches, so that the S²NN fires at a normal rate."""
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(x)
    return net.eval()


def contenders(kind: str, batch: int, threads: int, tmp: Path) -> dict[str, callable]:
    import onnxruntime as ort

    torch.manual_seed(0)
    shape = (64,) if kind == "mlp" else (1, 8, 8)
    x = torch.randn(batch, *shape)
    calib = torch.randn(256, *shape)
    build = mlp if kind == "mlp" else cnn
    nets = {
        "ANN": _calibrated(build(nn.ReLU), calib),
        "S2NN": _calibrated(build(lambda: S2Cell(0.5)), calib),
    }
    fns: dict[str, callable] = {}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    for name, net in nets.items():
        compiled = torch.compile(net, dynamic=False)

        def eager(net=net):
            with torch.inference_mode():
                return net(x)

        def comp(compiled=compiled):
            with torch.inference_mode():
                return compiled(x)

        path = to_onnx(net, calib[:2], tmp / f"{kind}-{name}.onnx")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"input": x.numpy()}

        def onnx(session=session, feed=feed):
            return session.run(None, feed)

        fns[f"{name} eager"] = eager
        fns[f"{name} compile"] = comp
        fns[f"{name} onnxruntime"] = onnx
    multi = sj(kind)
    x_seq = x.unsqueeze(0).repeat(T_MULTI, *[1] * x.ndim)

    def run_multi():
        with torch.inference_mode():
            out = multi(x_seq).mean(0)
        functional.reset_net(multi)
        return out

    fns[f"LIF T={T_MULTI} eager"] = run_multi
    # the framework neurons (issue 16: the lean no-grad path, goal <= 1.3x the ANN at batch 1)
    for name, act in (("S2Neuron", lambda: S2Neuron(0.9, 0.5, init_hidden=True)),
                      ("S2Node", lambda: S2Node(0.5))):
        net = _calibrated(build(act), calib)

        def eager(net=net):
            with torch.inference_mode():
                return net(x)

        fns[f"{name} eager"] = eager
    # warm up (and compile) outside the timed rounds
    for fn in fns.values():
        for _ in range(2):
            fn()
    return fns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="MLP only, few rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds, inner = (4, 3) if args.quick else (20, 10)
    kinds = ("mlp",) if args.quick else ("mlp", "cnn")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            for batch in (1, 256):
                fns = contenders(kind, batch, args.threads, Path(tmp))
                n_inner = inner * (10 if batch == 1 else 1)
                times = interleaved_best(fns, rounds=rounds, inner=n_inner, warmup=1)
                results[f"{kind}/batch{batch}"] = times
                print(
                    f"\n{kind.upper()}, batch {batch}: best of {rounds} rounds, "
                    f"{args.threads} thread(s)"
                )
                print(f"{'contender':<22} {'ms/call':>9} {'× ANN (same runtime)':>21}")
                for name, t in times.items():
                    runtime = name.split(" ", 1)[1]
                    ann = times.get(f"ANN {runtime}")
                    ratio = f"{t / ann:>21.2f}" if ann else f"{'':>21}"
                    print(f"{name:<22} {1e3 * t:>9.4f} {ratio}")
                s2 = times["S2NN eager"]
                multi = times[f"LIF T={T_MULTI} eager"]
                print(
                    f"  LIF T={T_MULTI} / S2NN (eager): {multi / s2:.2f}×;  "
                    f"S2NN onnxruntime / eager: {times['S2NN onnxruntime'] / s2:.2f}×;  "
                    f"compile / eager: {times['S2NN compile'] / s2:.2f}×"
                )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
