"""``snn-singlestep`` command line (also ``python -m snn_singlestep``).

Subcommands:

- ``train``: train a single-step S²NN (``mlp``, ``cnn`` or ``preact-resnet``) on
  digits (bundled), MNIST, Fashion-MNIST or CIFAR-10; checkpoints, ``--resume``,
  metrics file and plot in ``--out``; multi-process under ``torchrun``.
- ``eval``: accuracy and per-layer firing rates of a checkpoint on a dataset split.
- ``convert``: collapse a SpikingJelly model-zoo net to T=1 and save it.
- ``export``: write a checkpoint's net as NIR or ONNX.

Exit status: 0 on success, 2 for usage errors (bad option, unknown name, missing
data, unwritable output directory, an existing output file without ``--overwrite``) and when the ``app`` extra is not installed
(``pip install "snn_singlestep[app]"``), 1 for a checkpoint that cannot be used,
130 when interrupted.

This module imports only the standard library at import time, so :func:`main` can check
for the ``app`` extra before any module that needs it is imported.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["main"]

_PROG = "snn-singlestep"

#: Modules of the ``app`` extra (``pip install "snn_singlestep[app]"``) the commands import:
#: scikit-learn (bundled digits), torchvision (MNIST, CIFAR-10 and the SpikingJelly model
#: zoo), tqdm (progress bars) and matplotlib (``curves.png``).
APP_MODULES = ("sklearn", "torchvision", "tqdm", "matplotlib")


def missing_app_modules() -> list[str]:
    """The modules of :data:`APP_MODULES` that cannot be imported here (checked without importing).

    Examples:
        >>> missing_app_modules()  # the app extra is installed
        []
    """
    missing = []
    for name in APP_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken install, or sys.modules[name] without spec
            found = False
        if not found:
            missing.append(name)
    return missing


# --------------------------------------------------------------------------- argument types
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks; shows defaults that say something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is not None and default is not False and default != argparse.SUPPRESS
                and "%(default)" not in text and action.option_strings):
            shown = " ".join(map(str, default)) if isinstance(default, list) else "%(default)s"
            text += f" (default: {shown})"
        return text


def _choices(names: Sequence[str]) -> str:
    return ", ".join(names)


# --------------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    from .data import DATASETS
    from .models import FRAMEWORKS, MODELS

    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Single-step (T=1) spiking neural networks for snnTorch and SpikingJelly.",
        epilog="Run '%(prog)s COMMAND --help' for the options of a command.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, formatter_class=_HelpFormatter, **kwargs)

    # ---- train
    train = command(
        "train",
        help="train a single-step S2NN (default: an MLP on scikit-learn's bundled digits)",
        description=(
            "Train a single-step S2NN (hidden S2 neurons, membrane readout) and print the "
            "test accuracy.\n\nWith no options: an MLP 64-256-256-10 on scikit-learn's "
            "bundled 8x8 digits (80/20 split), 30 epochs, no files written.\n"
            "With --out DIR: config.json, checkpoint.pt (after every epoch), metrics.jsonl "
            "and curves.png in DIR; --resume continues from DIR/checkpoint.pt.\n"
            "Under 'torchrun --nproc_per_node=N -m snn_singlestep train ...' the run uses "
            "DistributedDataParallel (gloo on CPU, nccl on GPU); --batch-size is the "
            "global batch."
        ),
    )
    data = train.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default="digits",
                      help=f"one of: {_choices(DATASETS)}; only digits is bundled")
    data.add_argument("--data-root", metavar="DIR",
                      help="directory with the dataset in torchvision's layout "
                           "(e.g. DIR/MNIST/raw); required for non-bundled datasets "
                           "unless --download")
    data.add_argument("--download", action="store_true",
                      help="let torchvision download a missing dataset into --data-root "
                           "(default ./data)")
    data.add_argument("--limit", type=_positive_int, metavar="N",
                      help="use only the first N samples of each split (quick checks)")
    data.add_argument("--workers", type=_nonnegative_int, default=0,
                      help="DataLoader worker processes")
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=MODELS, default="mlp",
                       help=f"one of: {_choices(MODELS)}")
    model.add_argument("--framework", choices=FRAMEWORKS, default="snntorch",
                       help="which glue provides the S2 neurons (S2Cell, S2Neuron, S2Node); "
                            "the net and its maths are the same")
    model.add_argument("--hidden", type=_positive_int, nargs="+", default=[256, 256],
                       metavar="SIZE", help="mlp: hidden layer sizes")
    model.add_argument("--channels", type=_positive_int, nargs="+", default=[16, 32],
                       metavar="C", help="cnn: channels of the conv blocks")
    model.add_argument("--depth", type=_positive_int, default=20, help="preact-resnet: depth")
    model.add_argument("--width", type=_positive_int, default=16,
                       help="preact-resnet: channels of the first stage")
    opt = train.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=_positive_int, default=30, help="passes over the data")
    opt.add_argument("--batch-size", type=_positive_int, default=64,
                     help="global batch size (split over the processes under torchrun)")
    opt.add_argument("--lr", type=_positive_float, default=1e-3,
                     help="Adam learning rate (cosine schedule to 0)")
    opt.add_argument("--seed", type=int, default=0,
                     help="seeds initialisation, shuffling and the digits split")
    opt.add_argument("--device", default="auto",
                     help="auto (cuda if available), cpu, cuda or cuda:N")
    opt.add_argument("--threads", type=_positive_int, metavar="N",
                     help="CPU threads for torch (default: torch's choice; 1 is often fastest "
                          "for small nets on a busy machine)")
    out = train.add_argument_group("output")
    out.add_argument("--out", metavar="DIR",
                     help="write config, checkpoint, metrics and plot to DIR")
    out.add_argument("--resume", nargs="?", const="", metavar="CHECKPOINT",
                     help="continue from CHECKPOINT (default: OUT/checkpoint.pt) with the "
                          "same settings")
    out.add_argument("--overwrite", action="store_true",
                     help="start afresh even if --out already holds a checkpoint")
    out.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    train.set_defaults(handler=_train, command_parser=train)

    # ---- eval
    ev = command(
        "eval",
        help="accuracy and firing rates of a checkpoint on a dataset split",
        description=(
            "Evaluate a checkpoint written by 'train --out' (or 'convert'): accuracy, "
            "loss and the firing rate of every spiking layer (S2Cell, S2Neuron, S2Node, "
            "counted with forward hooks). The dataset and the digits split default to "
            "those of the training run."
        ),
    )
    ev.add_argument("checkpoint", help="path of a checkpoint file")
    ev.add_argument("--dataset", choices=DATASETS,
                    help="dataset to evaluate on (default: the one it was trained on)")
    ev.add_argument("--split", choices=("test", "train"), default="test",
                    help="which split to evaluate")
    ev.add_argument("--data-root", metavar="DIR",
                    help="directory of a non-bundled dataset (default: the training run's)")
    ev.add_argument("--download", action="store_true", help="let torchvision download it")
    ev.add_argument("--limit", type=_positive_int, metavar="N",
                    help="evaluate the first N samples only")
    ev.add_argument("--batch-size", type=_positive_int, default=256, help="evaluation batch")
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ev.add_argument("--threads", type=_positive_int, metavar="N", help="CPU threads for torch")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(handler=_eval, command_parser=ev)

    # ---- convert
    from .models import ZOO_NEURONS

    cv = command(
        "convert",
        help="collapse a SpikingJelly model-zoo net to single-step (T=1) and save it",
        description=(
            "Build a net of SpikingJelly's model zoo by name (e.g. spiking_resnet18, "
            "sew_resnet18, spiking_vgg11_bn), optionally load its trained weights, "
            "collapse it to T=1 with snn_singlestep.spikingjelly.collapse and save a "
            "checkpoint that 'eval' and torch.load(weights_only=True) read."
        ),
    )
    cv.add_argument("name", help="model-zoo function name, e.g. spiking_resnet18")
    cv.add_argument("--checkpoint", metavar="FILE",
                    help="weights of the multi-step net (a state_dict, or a dict holding "
                         "one under 'model', 'state_dict' or 'net')")
    cv.add_argument("--num-classes", type=_positive_int, default=10, help="readout size")
    cv.add_argument("--neuron", choices=tuple(ZOO_NEURONS), default="if",
                    help="spiking neuron the zoo net is built with")
    cv.add_argument("--cnf", choices=("ADD", "IAND", "AND"), default="ADD",
                    help="connect function of the sew_resnet nets")
    cv.add_argument("--out", metavar="FILE", required=True, help="where to save the result")
    cv.add_argument("--overwrite", action="store_true",
                    help="replace --out if it already exists (refused otherwise)")
    cv.set_defaults(handler=_convert, command_parser=cv)

    # ---- export
    from ..export import ONNX_OPSET
    from .exporting import FORMATS

    ex = command(
        "export",
        help="export a checkpoint's single-step net to NIR or ONNX",
        description=(
            "Rebuild the net of a checkpoint written by 'train' or 'convert' and export it: "
            "NIR (affine/conv nodes and thresholds) or ONNX (spikes as comparisons and casts, "
            "dynamic batch axis). Needs the 'deploy' extra: pip install snn_singlestep[deploy]."
        ),
    )
    ex.add_argument("checkpoint", help="checkpoint written by 'train' or 'convert'")
    ex.add_argument("out", help="file to write (.nir / .onnx)")
    ex.add_argument("--format", choices=FORMATS, required=True,
                    help="nir (a .nir graph of affine/conv and threshold nodes) or onnx")
    ex.add_argument("--input-shape", metavar="C,H,W", default=None,
                    help="shape of one sample, for checkpoints that do not record one")
    ex.add_argument("--opset", type=_positive_int, default=ONNX_OPSET, help="ONNX opset")
    ex.add_argument("--overwrite", action="store_true",
                    help="replace OUT if it already exists (refused otherwise)")
    ex.set_defaults(handler=_export, command_parser=ex)

    # ---- build-kernel
    bk = command(
        "build-kernel",
        help="compile the S2 backward into one CPU kernel (once per machine; faster training)",
        description=(
            "Compile the S2 surrogate backward with AOTInductor into one C++ kernel and keep it "
            "on disk (20-40 s, needs a C++ compiler). Every later process loads it and trains "
            "small CPU nets faster; without it the eager backward gives the same gradients "
            "(to an ulp or two). Default location: $SNN_SINGLESTEP_KERNEL_DIR, else "
            "~/.cache/snn_singlestep."
        ),
    )
    bk.add_argument("--path", default=None, help="file to write (.pt2; default: the cache)")
    bk.add_argument("--overwrite", action="store_true", help="rebuild an existing kernel")
    bk.set_defaults(handler=_build_kernel, command_parser=bk)
    return parser


# --------------------------------------------------------------------------- helpers
def _usage_error(parser: argparse.ArgumentParser, message: str) -> None:
    parser.error(message)  # prints usage + "PROG: error: message", exits 2


def _fail(command: str, message: str, code: int = 1) -> int:
    print(f"{_PROG} {command}: error: {message}", file=sys.stderr)
    return code


def _set_threads(threads: Optional[int]) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _check_writable_dir(option: str, path: Path) -> Optional[str]:
    """Why ``path`` cannot be (created and) written as a directory, or None if it can.

    Creates nothing: the nearest existing ancestor must be a writable directory.
    """
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{option}: cannot write to {path}: {probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{option}: cannot write to {path}: {probe} is not writable"
    return None


def _exists_without_overwrite(path: Path, overwrite: bool) -> bool:
    """True if writing ``path`` would replace a file the user did not allow us to replace."""
    return not overwrite and (path.exists() or path.is_symlink())


def _check_data_args(parser: argparse.ArgumentParser, dataset: str, root: Optional[str],
                     download: bool) -> None:
    from .data import dataset_spec

    spec = dataset_spec(dataset)
    if not spec.bundled and root is None and not download:
        _usage_error(
            parser,
            f"--dataset {dataset} is not bundled: give --data-root DIR (torchvision layout, "
            f"DIR/{spec.folder}) or pass --download",
        )


# --------------------------------------------------------------------------- train
def _train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..errors import CheckpointError, ConfigError
    from .train import CHECKPOINT_NAME, TrainConfig, train

    _check_data_args(parser, args.dataset, args.data_root, args.download)
    resume = args.resume
    if resume is not None:
        if resume == "":
            if args.out is None:
                _usage_error(parser, "--resume without a CHECKPOINT needs --out DIR "
                                     "(it resumes DIR/checkpoint.pt)")
            resume = str(Path(args.out) / CHECKPOINT_NAME)
        if args.overwrite:
            _usage_error(parser, "--resume and --overwrite exclude each other")
    if args.out is not None:
        out = Path(args.out)
        problem = _check_writable_dir("--out", out)
        if problem:
            _usage_error(parser, problem)
        if resume is None and not args.overwrite and (out / CHECKPOINT_NAME).exists():
            _usage_error(
                parser,
                f"--out {out} already holds {CHECKPOINT_NAME} from an earlier run; pass "
                "--resume to continue it or --overwrite to start afresh",
            )
    _set_threads(args.threads)
    try:
        config = TrainConfig(
            dataset=args.dataset, model=args.model, framework=args.framework,
            hidden=tuple(args.hidden), channels=tuple(args.channels), depth=args.depth,
            width=args.width, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            seed=args.seed, limit=args.limit, data_root=args.data_root,
            download=args.download, device=args.device, workers=args.workers,
            out=args.out, resume=resume, progress=not args.no_progress,
        )
        result = train(config)
    except CheckpointError as err:
        return _fail("train", str(err))
    except ConfigError as err:
        _usage_error(parser, str(err))
    if result.rank == 0:
        noun = "digits" if args.dataset == "digits" else f"{args.dataset} test images"
        print(
            f"test accuracy: {100 * result.test_accuracy:.2f}% "
            f"({result.test_samples} {noun}, {args.model}, {args.framework} S2 neurons, "
            f"{result.train_seconds:.1f} s)"
        )
        if result.checkpoint is not None:
            print(f"checkpoint: {result.checkpoint}")
    return 0


# --------------------------------------------------------------------------- eval
def _format_report(report: dict[str, Any]) -> str:
    lines = [
        f"checkpoint: {report['checkpoint']} ({report['model']}, {report['framework']}, "
        f"epoch {report['epoch']})",
        f"data: {report['dataset']} {report['split']} split, {report['samples']} samples",
        f"accuracy: {100 * report['accuracy']:.2f}%",
        f"loss: {report['loss']:.4f}",
        "firing rates (fraction of neurons that spike, per sample):",
    ]
    layers = report["firing_rates"]["layers"]
    width = max([len(r["layer"]) for r in layers] + [3])
    for r in layers:
        lines.append(f"  {r['layer']:<{width}}  {r['neurons']:>8} neurons  {r['rate']:.4f}")
    total = sum(r["neurons"] for r in layers)
    lines.append(f"  {'all':<{width}}  {total:>8} neurons  {report['firing_rates']['overall']:.4f}")
    if report.get("energy") is not None:
        lines.append("energy (estimate per sample):")
        for key, value in report["energy"].items():
            if isinstance(value, dict):  # the price table: pJ per operation
                value = ", ".join(f"{op} {pj:g} pJ" for op, pj in value.items())
            elif isinstance(value, float):
                value = f"{value:,.1f}"
            lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def _eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .data import dataset_spec, load_dataset
    from .distributed import resolve_device
    from ..errors import CheckpointError, ConfigError
    from .train import evaluate_model, model_from_checkpoint

    _set_threads(args.threads)
    try:
        device = resolve_device(args.device)
        model, data = model_from_checkpoint(args.checkpoint)
    except CheckpointError as err:
        return _fail("eval", str(err))
    except ConfigError as err:
        _usage_error(parser, str(err))
    config = data["config"]
    dataset = args.dataset or config.get("dataset")
    root = args.data_root if args.data_root is not None else config.get("data_root")
    if dataset is None:
        _usage_error(parser, f"{args.checkpoint} names no dataset: pass --dataset")
    _check_data_args(parser, dataset, root, args.download)
    spec = dataset_spec(dataset)
    want = config.get("in_shape")
    fits = (tuple(want) == spec.in_shape if want is not None
            else config.get("in_channels", 3) == spec.in_shape[0])
    if not fits or spec.num_classes != config.get("num_classes"):
        takes = ("x".join(map(str, want)) if want is not None
                 else f"{config.get('in_channels', 3)}-channel")
        return _fail(
            "eval",
            f"{args.checkpoint} takes {takes} images and {config.get('num_classes')} "
            f"classes; {dataset} has {'x'.join(map(str, spec.in_shape))} images and "
            f"{spec.num_classes} classes",
        )
    try:
        train_set, test_set, _ = load_dataset(
            dataset, root=root, download=args.download, seed=config.get("seed", 0),
            limit=args.limit,
        )
    except ConfigError as err:
        _usage_error(parser, str(err))
    model.to(device)
    report = {
        "checkpoint": str(args.checkpoint),
        "model": config.get("model"),
        "framework": config.get("framework"),
        "epoch": data.get("epoch"),
        "dataset": dataset,
        "split": args.split,
        **evaluate_model(model, train_set if args.split == "train" else test_set,
                         batch_size=args.batch_size, device=device),
    }
    print(json.dumps(report, indent=2) if args.json else _format_report(report))
    return 0


# --------------------------------------------------------------------------- convert
def _convert(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .checkpoint import load_model_state, load_weights, save_checkpoint
    from ..errors import CheckpointError, ConfigError, ConversionError
    from .models import build_zoo_model, single_step_zoo_model, zoo_in_shape

    out = Path(args.out)
    if out.is_dir():
        _usage_error(parser, f"--out {out} is a directory; give a file name")
    problem = _check_writable_dir("--out", out.parent)
    if problem:
        _usage_error(parser, problem)
    if _exists_without_overwrite(out, args.overwrite):
        return _fail("convert", f"--out {out} already exists; pass --overwrite to replace it",
                     code=2)
    try:
        net = build_zoo_model(args.name, num_classes=args.num_classes, neuron=args.neuron,
                              cnf=args.cnf)
    except ConfigError as err:
        _usage_error(parser, str(err))
    try:
        if args.checkpoint is not None:
            load_model_state(net, load_weights(args.checkpoint), args.checkpoint)
        single, report = single_step_zoo_model(net, return_report=True)
    except (CheckpointError, ConversionError) as err:
        return _fail("convert", str(err))
    in_shape = zoo_in_shape(args.name)
    config = {
        "model": "spikingjelly-zoo",
        "zoo": args.name,
        "neuron": args.neuron,
        "cnf": args.cnf,
        "num_classes": args.num_classes,
        "in_shape": list(in_shape) if in_shape else None,
        "in_channels": in_shape[0] if in_shape else 3,
        "framework": "spikingjelly",
        "dataset": None,
        "source_checkpoint": args.checkpoint,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, {"config": config, "model": single.state_dict(), "epoch": None,
                          "collapse_report": str(report)})
    print(str(report).splitlines()[0])
    print(f"saved: {out}")
    if args.checkpoint is None:
        print(f"{_PROG} convert: warning: no --checkpoint given, so {out} holds an untrained net "
              "(random initial weights)", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- export
def _export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..errors import CheckpointError, ConfigError, ConversionError, ShapeError
    from .exporting import export_checkpoint

    if _exists_without_overwrite(Path(args.out), args.overwrite):
        return _fail("export", f"{args.out} already exists; pass --overwrite to replace it",
                     code=2)
    shape = None
    if args.input_shape:
        try:
            shape = tuple(int(d) for d in args.input_shape.split(","))
        except ValueError:
            _usage_error(parser, f"--input-shape must look like 3,32,32, got {args.input_shape!r}")
    try:
        path = export_checkpoint(args.checkpoint, args.out, args.format,
                                 input_shape=shape, opset_version=args.opset)
    except ConfigError as err:
        _usage_error(parser, str(err))
    except (ImportError, CheckpointError, ConversionError, ShapeError) as err:
        return _fail("export", str(err))
    print(f"saved: {path}")
    return 0


def _build_kernel(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import time

    from ..core.kernel import build_kernel, kernel_path
    from ..errors import ConfigError

    target = Path(args.path) if args.path else kernel_path()
    kept = target.exists() and not args.overwrite  # build_kernel leaves it as it is
    start = time.perf_counter()
    try:
        path = build_kernel(target, overwrite=args.overwrite)
    except ConfigError as err:
        return _fail("build-kernel", str(err))
    if kept:
        print(f"S2 backward kernel already built: {path} (--overwrite rebuilds it)")
    else:
        print(f"S2 backward kernel: {path} ({time.perf_counter() - start:.1f} s)")
    return 0


# --------------------------------------------------------------------------- entry point
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit code (argparse exits with 2 for usage errors).

    Without the ``app`` extra it prints one line naming the missing modules and returns 2.
    """
    missing = missing_app_modules()
    if missing:  # before any app module imports them
        print(
            f"{_PROG} needs the app extra (missing: {', '.join(missing)}): "
            'pip install "snn_singlestep[app]"',
            file=sys.stderr,
        )
        return 2
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args, args.command_parser)
    except KeyboardInterrupt:
        print(f"{_PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
