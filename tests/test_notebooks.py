"""The tutorial notebooks of docs/tutorials/: reachable, committed as one clean run, executable.

The notebooks are committed with their outputs (the docs site shows them without executing
anything), produced by ``python docs/tutorials/run.py``. The fast tests check that what is
committed is the output of one clean top-to-bottom run; the slow test executes each notebook
again with run.py's own settings, so a regression that breaks one of the asserts inside a
notebook fails here.
"""

import ast
import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
MACHINE_PATHS = re.compile(r"(/work/|/tmp/|/root/|/home/)")

nbformat = pytest.importorskip("nbformat", reason="notebook tools are in the dev extra")


def _runner():
    """docs/tutorials/run.py, imported from its path (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("_tutorials_run", TUTORIALS / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _nav_entries() -> list[str]:
    yaml = pytest.importorskip("yaml")
    entries = []

    def walk(node):
        if isinstance(node, str):
            entries.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    return entries


def test_the_learning_path_exists():
    assert NOTEBOOKS, "no NN_*.ipynb in docs/tutorials/"
    assert [int(p.name[:2]) for p in NOTEBOOKS] == list(range(1, len(NOTEBOOKS) + 1)), (
        "tutorials are numbered 01, 02, ... without gaps"
    )


def test_every_notebook_is_in_the_nav_and_in_the_overview():
    nav = _nav_entries()
    overview = (TUTORIALS / "index.md").read_text()
    assert "tutorials/index.md" in nav
    for path in NOTEBOOKS:
        assert f"tutorials/{path.name}" in nav, f"{path.name} is not in the mkdocs.yml nav"
        assert f"({path.name})" in overview, f"docs/tutorials/index.md does not link {path.name}"
    listed = [e for e in nav if e.startswith("tutorials/") and e.endswith(".ipynb")]
    missing = [e for e in listed if not (ROOT / "docs" / e).exists()]
    assert not missing, f"mkdocs.yml lists notebooks that do not exist: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_its_title_and_ends_with_a_summary(path):
    cells = nbformat.read(path, as_version=4).cells
    number = int(path.name[:2])
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {number}. "), (
        f"{path.name}: the first cell is the title '# {number}. ...'"
    )
    assert cells[-1].cell_type == "markdown", f"{path.name}: end with a markdown summary"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_are_one_clean_run(path):
    cells = _code_cells(path)
    counts = [c.execution_count for c in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name}: execution counts {counts} are not one top-to-bottom run; "
        f"run `python docs/tutorials/run.py {path.name}`"
    )
    timed = [i for i, c in enumerate(cells) if "execution" in c.metadata]
    assert not timed, f"{path.name}: cells {timed} carry execution timestamps; use run.py"
    outputs = [out for c in cells for out in c.outputs]
    errors = [out.get("ename") for out in outputs if out.output_type == "error"]
    assert not errors, f"{path.name}: committed with errors {errors}"
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert images, f"{path.name}: no figure in the outputs"
    for out in outputs:
        texts = [out.get("text", "")] + [
            v for k, v in out.get("data", {}).items() if k.startswith("text/")
        ]
        leaked = [m for t in texts for m in MACHINE_PATHS.findall("".join(t))]
        assert not leaked, f"{path.name}: an output shows a path of this machine {leaked}"


def _asserts(source: str) -> int:
    # IPython magics and shell escapes are not Python: blank them before parsing
    python = "\n".join("" if line.lstrip()[:1] in "%!" else line for line in source.splitlines())
    return sum(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(python)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_checks_its_own_results(path):
    n = sum(_asserts(c.source) for c in _code_cells(path))
    assert n >= 1, f"{path.name}: no `assert` in its code cells; check the results it claims"


def test_the_checks_see_asserts_and_leaked_paths():
    """The helpers above can fail: they find what they look for."""
    assert _asserts("%matplotlib inline\nx = 1\nassert x == 1, 'x'") == 1
    assert _asserts("print('assert')") == 0
    assert MACHINE_PATHS.findall("saved to /tmp/abc") and not MACHINE_PATHS.findall("a/b")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path):
    """A fresh in-memory run with run.py's settings (nothing is written back)."""
    pytest.importorskip("nbclient")
    nb, _ = _runner().execute(path)  # raises CellExecutionError if a cell raises
    errors = [out for c in nb.cells if c.cell_type == "code" for out in c.outputs
              if out.output_type == "error"]
    assert not errors


def test_links_between_notebooks_become_page_urls_and_missing_targets_warn(caplog):
    """docs/tutorials/mkdocs_hooks.py: what makes notebook links work (and checked) on the site."""
    files_module = pytest.importorskip("mkdocs.structure.files")
    notebook_file = pytest.importorskip("mkdocs_jupyter.plugin").NotebookFile
    spec = importlib.util.spec_from_file_location("_hooks", TUTORIALS / "mkdocs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)

    def file(path):  # as the build sees it: mkdocs-jupyter turns a notebook into a page
        plain = files_module.File(path, "docs", "site", use_directory_urls=True)
        if path.endswith(".ipynb"):
            return notebook_file(plain, use_directory_urls=True, site_dir="site")
        return plain

    files = files_module.Files([file("tutorials/01_a.ipynb"), file("tutorials/02_b.ipynb"),
                                file("theory.md")])
    page = type("Page", (), {"file": files.get_file_from_path("tutorials/01_a.ipynb")})()
    html = ('<a href="02_b.ipynb">next</a> <a href="../theory.md#tie-rule">theory</a> '
            '<a href="https://x.org/a.ipynb">web</a> <a href="#top">top</a>')
    out = hooks.on_page_content(html, page, None, files)
    assert 'href="../02_b/"' in out and 'href="../../theory/#tie-rule"' in out
    assert 'href="https://x.org/a.ipynb"' in out and 'href="#top"' in out
    with caplog.at_level("WARNING", logger="mkdocs"):
        hooks.on_page_content('<a href="09_missing.ipynb">x</a>', page, None, files)
    assert "09_missing.ipynb" in caplog.text
