"""``snn-singlestep`` command line (also ``python -m snn_singlestep``)."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

__all__ = ["main"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    from .models import FRAMEWORKS

    parser = argparse.ArgumentParser(
        prog="snn-singlestep", description="Single-step (T=1) spiking neural networks."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train a single-step S2NN MLP on scikit-learn's bundled digits",
        description="Train an MLP of S2 neurons (membrane readout) on scikit-learn's "
        "digits (80/20 split) and print the test accuracy.",
    )
    train.add_argument("--framework", choices=FRAMEWORKS, default="snntorch",
                       help="which glue provides the neuron (default: snntorch)")
    train.add_argument("--hidden", type=_positive_int, nargs="+", default=[256, 256],
                       help="hidden layer sizes (default: 256 256)")
    train.add_argument("--epochs", type=_positive_int, default=30)
    train.add_argument("--batch-size", type=_positive_int, default=64)
    train.add_argument("--lr", type=_positive_float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _train(args: argparse.Namespace) -> int:
    import torch

    from .data import load_digits_split
    from .models import SingleStepMLP
    from .train import fit

    torch.manual_seed(args.seed)
    train, test = load_digits_split(seed=args.seed)
    model = SingleStepMLP(64, 10, hidden=args.hidden, framework=args.framework)
    result = fit(
        model, train, test, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, progress=not args.no_progress,
    )
    print(
        f"test accuracy: {100 * result.test_accuracy:.2f}% "
        f"({len(test)} digits, {args.framework} S2 neurons, {result.train_seconds:.1f} s)"
    )
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit code (2 for usage errors, like argparse)."""
    args = _parser().parse_args(argv)
    if args.command == "train":
        return _train(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse guarantees it


if __name__ == "__main__":
    sys.exit(main())
