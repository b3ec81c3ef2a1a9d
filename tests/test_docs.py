"""The documentation site builds with warnings as errors (broken links, bad API refs)."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mkdocs_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="docs toolchain is in the dev extra")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "api" / "index.html").exists()


def test_every_docs_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    tutorials = ROOT / "docs" / "tutorials"
    pages |= {f"tutorials/{p.name}" for p in tutorials.glob("*.md")}
    pages |= {f"tutorials/{p.name}" for p in tutorials.glob("*.ipynb")}
    missing = sorted(p for p in pages if p not in nav)
    assert not missing, f"pages not reachable from mkdocs.yml nav: {missing}"


def _resolves(name: str) -> bool:
    """``name`` is a module, or an attribute path below the longest importable module."""
    import importlib

    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_api_reference_names_import():
    """Every ``::: dotted.name`` of docs/api.md exists (catches moved modules without mkdocs)."""
    names = re.findall(r"^::: (\S+)$", (ROOT / "docs" / "api.md").read_text(), flags=re.M)
    assert names
    missing = [name for name in names if not _resolves(name)]
    assert not missing, f"docs/api.md names what does not exist: {missing}"


def test_readme_and_index_keep_the_two_commands():
    install = 'python3 -m pip install -e ".[dev]" && snn-singlestep train'
    for page in (ROOT / "README.md", ROOT / "docs" / "index.md"):
        text = page.read_text()
        assert install in text and "python3 -m pytest" in text, page.name
    assert (ROOT / "README.md").read_text().count(f"```bash\n{install}\n```") == 1


def test_docs_show_where_every_part_of_the_package_lives():
    """README and docs/index.md draw the package tree: a new folder must be added there."""
    package = ROOT / "snn_singlestep"
    parts = [f"{p.name}/" for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"]
    parts += [p.name for p in package.glob("*.py") if not p.name.startswith("_")]
    parts += ["__init__.py"]
    for page in (ROOT / "README.md", ROOT / "docs" / "index.md"):
        tree = re.search(r"```text\nsnn_singlestep/\n(.*?)```", page.read_text(), flags=re.S)
        assert tree, f"{page.name} has no package tree (```text block starting snn_singlestep/)"
        shown = set(re.findall(r"^[├└]── (\S+)", tree.group(1), flags=re.M))
        missing = sorted(set(parts) - shown)
        assert not missing, f"{page.name}'s package tree lacks {missing}"
