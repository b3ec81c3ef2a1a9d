"""Every benchmark script runs end to end in its --quick mode (a sanity run: no threshold
is asserted on timings; those are reported, not tested, on these shared machines)."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
WRITES_OUT = {"compare.py", "psp_depth.py", "noise_convert.py"}
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_quick_mode_runs(script, tmp_path):
    args = [sys.executable, str(ROOT / "benchmarks" / script), "--quick"]
    if script in WRITES_OUT:
        args += ["--out", str(tmp_path)]
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip(), "a benchmark must print its measurements"
    if script in WRITES_OUT:
        assert any(tmp_path.glob("*.png")), "the plot was not written"
