"""Execute the tutorial notebooks top to bottom and store their outputs in them.

The notebooks in ``docs/tutorials/`` are committed *with* their outputs, so that the docs site
shows their figures without executing anything at build time. This script produces those
outputs the way a learner would: a fresh kernel per notebook, every cell in order, working
directory ``docs/tutorials/``.

Usage::

    python docs/tutorials/run.py                      # all NN_*.ipynb in docs/tutorials/
    python docs/tutorials/run.py 01_why_one_step.ipynb
    python docs/tutorials/run.py --check              # execute in memory, write nothing

* The kernel gets ``OMP_NUM_THREADS=1`` (timings comparable across machines, no thread
  oversubscription when several notebooks run side by side) and matplotlib's inline backend
  (``MPLBACKEND=module://matplotlib_inline.backend_inline``: headless like ``Agg``, but
  ``plt.show()`` emits the PNG that the page displays; with plain ``Agg`` it emits nothing)
  and ``PYTHONHASHSEED=0`` (sets of strings iterate in the same order on every run).
* The executed notebook is written back atomically (``snn_singlestep.core.io.atomic_path``)
  without volatile metadata (no per-cell execution timestamps), so re-running an unchanged
  notebook changes only what its computation changes.
* The wall time of each notebook is printed; the exit status is 1 if a cell raised (the
  notebook is then not written), 0 otherwise.

``tests/test_notebooks.py`` imports :func:`execute` from this file, so the test suite runs
the notebooks with exactly these settings.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
PATTERN = "[0-9][0-9]_*.ipynb"
KERNEL_ENV = {
    "OMP_NUM_THREADS": "1",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "PYTHONHASHSEED": "0",
}
TIMEOUT_S = 600  # per cell


def notebooks(names: list[str] | None = None) -> list[pathlib.Path]:
    """The tutorial notebooks named (relative to docs/tutorials/ or to the cwd), or all."""
    if not names:
        return sorted(HERE.glob(PATTERN))
    paths = []
    for name in names:
        path = pathlib.Path(name)
        if not path.exists() and (HERE / name).exists():
            path = HERE / name
        if not path.exists():
            raise SystemExit(f"run.py: no notebook {name!r} (looked in . and {HERE})")
        paths.append(path.resolve())
    return paths


KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def strip_volatile(nb) -> None:
    """Remove what changes on every run without the computation changing (timestamps).

    Also give a notebook written without a kernelspec (e.g. by jupytext) the Python 3 one it
    was executed with, so that the downloaded file opens in Jupyter without asking.
    """
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    nb.metadata.setdefault("kernelspec", dict(KERNELSPEC))


def execute(path: os.PathLike, *, timeout: int = TIMEOUT_S):
    """Run the notebook at ``path`` in a fresh kernel; return ``(notebook, seconds)``.

    The working directory is the notebook's folder and the kernel environment is the
    current one plus :data:`KERNEL_ENV`. Raises ``nbclient.exceptions.CellExecutionError``
    when a cell raises; the file on disk is never touched.
    """
    import nbclient
    import nbformat

    path = pathlib.Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=KERNELSPEC["name"],
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute(env={**os.environ, **KERNEL_ENV})
    seconds = time.perf_counter() - start
    strip_volatile(nb)
    return nb, seconds


def write(nb, path: os.PathLike) -> None:
    """Write ``nb`` to ``path`` atomically (never a half-written notebook)."""
    import nbformat

    from snn_singlestep.core.io import atomic_path

    nbformat.validate(nb)
    with atomic_path(path) as tmp:
        nbformat.write(nb, tmp)  # a file name: nbformat writes UTF-8 whatever the locale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all NN_*.ipynb)")
    parser.add_argument("--check", action="store_true", help="execute only; write nothing")
    args = parser.parse_args(argv)

    from nbclient.exceptions import CellExecutionError

    failed = []
    total = 0.0
    for path in notebooks(args.names):
        try:
            nb, seconds = execute(path)
        except CellExecutionError as err:
            failed.append(path.name)
            print(f"FAILED {path.name}\n{err}", file=sys.stderr)
            continue
        total += seconds
        if not args.check:
            write(nb, path)
        print(f"{seconds:7.1f} s  {path.name}{'' if args.check else '  (written)'}", flush=True)
    print(f"{total:7.1f} s  total")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
