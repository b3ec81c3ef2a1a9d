"""The package's layers import one way: ``app`` → ``export`` / ``convert`` / ``models`` /
``energy`` / ``monitor`` → (the glue registers into) ``core``.

Every ``.py`` file under ``snn_singlestep/`` is parsed with :mod:`ast`; its imports, at module
level and inside functions, are resolved to absolute module names (``from ..core import x``
in ``snn_singlestep/convert/collapse.py`` is ``snn_singlestep.core``, and
``from . import rules`` in a package is ``<package>.rules``). A failure names the file, the
line and the import.

The layers (``README.md`` and ``docs/index.md`` show the same tree):

=====================  ======================================================================
``core/``              torch only: imports nothing of the package but ``core`` and ``errors``
``snntorch/``,         the glue, the only code that imports snnTorch / SpikingJelly; registers
``spikingjelly/``      into ``core.registry``; its ``collapse``/``to_multistep`` wrappers import
                       ``convert`` inside the function
``convert/``,          framework-neutral engines: ask ``core.registry``, never import the
``export/``,           frameworks or the glue (``models`` may build the glue's neurons)
``models/``,
``energy.py``,
``monitor.py``
``app/``               the command line; nothing outside ``app/`` (and ``__main__.py``)
                       imports it
=====================  ======================================================================
"""

from __future__ import annotations

import ast
import graphlib
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "snn_singlestep"
PACKAGE_DIR = ROOT / PACKAGE

FRAMEWORKS = ("snntorch", "spikingjelly")
GLUE = (f"{PACKAGE}.snntorch", f"{PACKAGE}.spikingjelly")
APP = f"{PACKAGE}.app"

#: The framework-neutral layers and the framework imports each one may still make.
NEUTRAL_LAYERS = {
    "core": (),
    "convert": (),
    "export": (),
    # make_neuron / swap_neurons build the glue's S2Neuron / S2Node by name.
    "models": GLUE,
    "energy.py": (),
    "monitor.py": (),
}

#: Single imports that break a rule on purpose: (file, imported module) -> why.
KNOWN_EXCEPTIONS = {
    ("snn_singlestep/energy.py", "spikingjelly.activation_based.op_counter"): (
        "energy_report counts MACs/SynOps with SpikingJelly's torch-only op counters "
        "(MACCounter, SynOpCounter under DispatchCounterMode), not with its neurons; "
        "imported inside the function"
    ),
}


# --------------------------------------------------------------------------- the scanner
@dataclass(frozen=True)
class Import:
    """One imported module name, where it is imported and whether at module level."""

    file: str  # path relative to the repository root, e.g. snn_singlestep/core/io.py
    line: int
    name: str  # absolute module name, e.g. snn_singlestep.core.registry
    module_level: bool  # runs when the file is imported (not in a function, not TYPE_CHECKING)

    def __str__(self) -> str:
        where = "" if self.module_level else " (inside a function)"
        return f"{self.file}:{self.line} imports {self.name}{where}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _source_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


MODULES = {_module_name(p) for p in _source_files()}


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    if level == 0:
        return target or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(parts) - 1:
        raise ValueError(f"relative import beyond the top-level package in {module}")
    parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts + ([target] if target else []))


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def scan(path: Path) -> list[Import]:
    """Every import in ``path``, module level and function level, as absolute names."""
    rel = path.relative_to(ROOT).as_posix()
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, runtime: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(rel, child.lineno, a.name, runtime) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                # ``from pkg import submodule`` imports the submodule (pkg, its parent, is
                # imported anyway); ``from pkg import name`` needs pkg itself.
                base = _resolve(module, is_package, child.level, child.module)
                names = {f"{base}.{a.name}" for a in child.names}
                subs = sorted(names & MODULES)
                if len(subs) < len(names) and base != module:
                    found.append(Import(rel, child.lineno, base, runtime))
                found.extend(Import(rel, child.lineno, sub, runtime) for sub in subs)
            inside = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, runtime and not inside and not _is_type_checking(child))

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=rel), True)
    return found


IMPORTS: dict[str, list[Import]] = {}
PARSE_ERRORS: dict[str, str] = {}
for _path in _source_files():
    _rel = _path.relative_to(ROOT).as_posix()
    try:
        IMPORTS[_rel] = scan(_path)
    except SyntaxError as _err:  # reported by test_every_file_parses, not as a collection error
        PARSE_ERRORS[_rel] = f"{_rel}:{_err.lineno}: {_err.msg}"


def _layer(file: str) -> str:
    """``core``, ``app``, … for a file in a sub-package; the file name for a top-level one."""
    return file.split("/")[1]


def _is_in(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _report(violations: list[Import], rule: str) -> str:
    lines = "\n".join(f"  {v}" for v in violations)
    return f"{len(violations)} import(s) break the rule: {rule}\n{lines}"


def _allowed(imp: Import) -> bool:
    return (imp.file, imp.name) in KNOWN_EXCEPTIONS


# --------------------------------------------------------------------------- the scanner works
def test_every_file_parses():
    assert not PARSE_ERRORS, "files the import checks cannot read:\n" + "\n".join(
        f"  {e}" for e in PARSE_ERRORS.values()
    )


def test_the_scanner_sees_relative_and_function_level_imports():
    cli = {(i.name, i.module_level) for i in IMPORTS["snn_singlestep/app/cli.py"]}
    assert ("snn_singlestep.app.train", False) in cli  # ``from .train import ...`` in _train
    assert ("argparse", True) in cli
    glue = {(i.name, i.module_level) for i in IMPORTS["snn_singlestep/snntorch/__init__.py"]}
    assert ("snn_singlestep.snntorch.rules", True) in glue  # ``from . import rules``
    assert ("snn_singlestep.core.surrogate", True) in glue  # ``from ..core.surrogate import``
    assert ("snn_singlestep.convert", False) in glue  # the lazy collapse wrapper
    assert _resolve("snn_singlestep.convert.collapse", False, 2, "core") == "snn_singlestep.core"
    assert _resolve("snn_singlestep.core", True, 1, "io") == "snn_singlestep.core.io"


def test_known_exceptions_still_exist():
    """An exception that no longer matches an import is stale: delete it."""
    present = {(i.file, i.name) for imports in IMPORTS.values() for i in imports}
    stale = sorted(set(KNOWN_EXCEPTIONS) - present)
    assert not stale, f"KNOWN_EXCEPTIONS entries that match no import any more: {stale}"


# --------------------------------------------------------------------------- (a) neutral layers
@pytest.mark.parametrize("layer", list(NEUTRAL_LAYERS))
def test_framework_neutral_layers_import_no_framework_and_no_glue(layer):
    allowed = NEUTRAL_LAYERS[layer]
    forbidden = FRAMEWORKS + GLUE
    violations = [
        imp
        for file, imports in IMPORTS.items()
        if _layer(file) == layer
        for imp in imports
        if _is_in(imp.name, forbidden) and not _is_in(imp.name, allowed) and not _allowed(imp)
    ]
    rule = (
        f"{layer} is framework-neutral: it asks snn_singlestep.core.registry and never imports "
        f"{', '.join(forbidden)}" + (f" (allowed here: {', '.join(allowed)})" if allowed else "")
    )
    assert not violations, _report(violations, rule)


# --------------------------------------------------------------------------- (b) app is the top
def test_nothing_outside_app_imports_app():
    violations = [
        imp
        for file, imports in IMPORTS.items()
        if _layer(file) not in ("app", "__main__.py")
        for imp in imports
        if _is_in(imp.name, (APP,))
    ]
    rule = f"only {APP}.* and snn_singlestep/__main__.py may import {APP} (it is the top layer)"
    assert not violations, _report(violations, rule)


# --------------------------------------------------------------------------- (c) core is the bottom
def test_core_imports_only_core_and_errors():
    allowed = (f"{PACKAGE}.core", f"{PACKAGE}.errors")
    violations = [
        imp
        for file, imports in IMPORTS.items()
        if _layer(file) == "core"
        for imp in imports
        if _is_in(imp.name, (PACKAGE,)) and not _is_in(imp.name, allowed)
    ]
    rule = "core/ imports nothing of snn_singlestep outside core/ and errors.py"
    assert not violations, _report(violations, rule)


# --------------------------------------------------------------------------- glue → core
def test_glue_imports_core_and_reaches_convert_only_lazily():
    """The glue registers into core; ``collapse``/``to_multistep`` reach convert in a function."""
    allowed = (f"{PACKAGE}.core", f"{PACKAGE}.errors", f"{PACKAGE}._compat", *GLUE)
    violations = []
    for file, imports in IMPORTS.items():
        if _layer(file) not in ("snntorch", "spikingjelly"):
            continue
        for imp in imports:
            if not _is_in(imp.name, (PACKAGE,)) or _is_in(imp.name, allowed):
                continue
            lazy_convert = (
                _is_in(imp.name, (f"{PACKAGE}.convert",))
                and not imp.module_level
                and file.endswith("/__init__.py")
            )
            if not lazy_convert:
                violations.append(imp)
    rule = (
        "the glue imports only core, errors, _compat and the glue; its __init__'s "
        "collapse/to_multistep wrappers may import convert inside the function"
    )
    assert not violations, _report(violations, rule)


# --------------------------------------------------------------------------- (d) no cycle
def test_module_import_graph_has_no_cycle():
    """Module-level imports between the package's modules form a DAG.

    The implicit import of a parent package (importing ``a.b.c`` runs ``a/__init__`` first)
    is not an edge: Python has the parent in ``sys.modules`` before it runs the child.
    """
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    where: dict[tuple[str, str], Import] = {}
    for file, imports in IMPORTS.items():
        module = _module_name(ROOT / file)
        for imp in imports:
            if imp.module_level and imp.name in MODULES and imp.name != module:
                graph[module].add(imp.name)
                where.setdefault((module, imp.name), imp)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        cycle = err.args[1]  # [a, b, ..., a]: each one is imported by the next
        edges = [where[(cycle[i + 1], cycle[i])] for i in range(len(cycle) - 1)]
        pytest.fail(
            "module-level import cycle: " + " <- ".join(cycle) + "\n"
            + "\n".join(f"  {e}" for e in edges)
        )


# --------------------------------------------------------------------------- the app extra
def test_importing_the_library_loads_no_app_module_and_no_app_dependency():
    """``import snn_singlestep`` (and its public sub-packages) needs no ``app`` extra.

    ``import torch`` already imports tqdm (torch.hub), so the frameworks are imported first
    and only the modules that our import adds are checked.
    """
    code = textwrap.dedent(
        """
        import json, sys
        import torch, snntorch
        import spikingjelly.activation_based.neuron, spikingjelly.activation_based.surrogate
        import spikingjelly.activation_based.functional, spikingjelly.activation_based.layer
        import spikingjelly.activation_based.base
        before = set(sys.modules)
        import snn_singlestep, snn_singlestep.export, snn_singlestep.energy
        import snn_singlestep.convert, snn_singlestep.models, snn_singlestep.monitor
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    new = json.loads(result.stdout.strip().splitlines()[-1])
    assert "snn_singlestep.core" in new  # the import really happened in this process
    app_deps = ("sklearn", "matplotlib", "tqdm", "torchvision")
    loaded = [m for m in new if _is_in(m, app_deps) or _is_in(m, (APP,))]
    assert not loaded, (
        "import snn_singlestep loads modules of the app extra or snn_singlestep.app: "
        f"{loaded}; import them inside the function that needs them"
    )
