"""Every ``python`` block of the README, and every docs block marked runnable, runs as pasted."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
# Blocks of the docs pages marked complete (``<!-- runnable -->`` just above them).
DOC_BLOCKS = [
    (page.name, code)
    for page in sorted((ROOT / "docs").glob("*.md"))
    for code in re.findall(r"<!-- runnable -->\n```python\n(.*?)```", page.read_text(), re.S)
]


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs_as_pasted(code, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"README block failed:\n{code}\n{result.stderr[-2000:]}"


def test_docs_have_runnable_blocks():
    assert any(name == "collapse.md" for name, _ in DOC_BLOCKS)


@pytest.mark.parametrize(
    "page, code", DOC_BLOCKS, ids=[f"{name}:{i}" for i, (name, _) in enumerate(DOC_BLOCKS)]
)
def test_docs_runnable_block_runs_as_pasted(page, code, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{page} block failed:\n{code}\n{result.stderr[-2000:]}"
