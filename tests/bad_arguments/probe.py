"""Run every (public callable, argument, bad value) case of the catalogue once; print counts.

``python tests/bad_arguments/probe.py`` (add ``-v`` to list every failing case). The
figure in ``docs/api.md`` (section "Argument checks and file writing") is this script's
output. Exit status 1 if a
case fails (raw error, non-finite result, wrong type).
"""

from __future__ import annotations

import collections
import os
import sys
import time

import _catalogue as cat  # python puts this script's folder first on sys.path
import torch


def probe(verbose: bool = False) -> collections.Counter:
    """Counts of each outcome over the whole catalogue (and ``"callables"``)."""
    counts: collections.Counter = collections.Counter()
    examples = cat.valid_examples()
    for name, obj in cat.public_callables().items():
        counts["callables"] += 1
        for param in cat.parameters(name, obj, examples[name]):
            for label, factory in cat.BAD_VALUES.items():
                torch.manual_seed(0)
                outcome = cat.run_case(name, obj, param, factory())
                counts[outcome.kind] += 1
                if outcome.kind == "FAIL" and verbose:
                    print(f"FAIL {name} {param}={label}: {outcome.detail[:300]}")
    return counts


def main() -> int:
    torch.set_num_threads(1)
    os.chdir(cat.tmp_dir())  # a bad ``path`` such as "no" is a valid file name
    start = time.perf_counter()
    counts = probe(verbose="-v" in sys.argv)
    cases = sum(counts[k] for k in ("error", "warning", "accepted", "FAIL"))
    print(
        f"{counts['callables']} public callables, {cases} bad-argument cases "
        f"({len(cat.BAD_VALUES)} bad values x each argument): {counts['error']} refused with "
        f"a SingleStepError, {counts['warning']} warned (SingleStepWarning), "
        f"{counts['accepted']} accepted as valid with a finite result of the documented "
        f"type, {counts['FAIL']} failed; {time.perf_counter() - start:.0f} s"
    )
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
