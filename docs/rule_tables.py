"""Write the rule tables of docs/collapse.md from the registered collapse rules.

Each rule's docstring is the one place its first-step equation is written; this script
renders them (``snn_singlestep.list_rules()``) between the ``<!-- rules:FRAMEWORK:GROUP -->``
and ``<!-- /rules -->`` markers of docs/collapse.md. Run ``python docs/rule_tables.py`` after
changing a rule; ``--check`` exits 1 if the page is out of date (the tests run it).
"""

from __future__ import annotations

import argparse
import inspect
import pathlib
import re
import sys

PAGE = pathlib.Path(__file__).with_name("collapse.md")
GROUPS = {"neurons": ("neuron", "keep", "refuse"), "layers": ("container", "layer", "model")}
_BLOCK = re.compile(r"(<!-- rules:(\w+):(\w+) -->\n)(.*?)(<!-- /rules -->)", re.S)


def _target(rule) -> str:
    if rule.kind == "keep":
        return "kept"
    if rule.kind == "refuse":
        return "refused"
    try:
        annotation = inspect.signature(rule.fn).return_annotation
    except (TypeError, ValueError):
        annotation = inspect.Signature.empty
    if annotation is inspect.Signature.empty:
        return "in place"
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return f"`{name}`" if name and name not in ("nn.Module", "Module", "None") else "in place"


def table(framework: str, group: str) -> str:
    """The Markdown table of one framework's rules of one group (rules sharing a function merge)."""
    import snn_singlestep

    rows: dict[object, list] = {}
    for rule in snn_singlestep.list_rules(framework):
        if rule.kind in GROUPS[group]:
            key = (rule.fn, rule.note)
            rows.setdefault(key, []).append(rule)
    lines = ["| source class | first step / rule | converted to |", "|---|---|---|"]
    for rules in sorted(rows.values(), key=lambda rs: rs[0].source.__name__):
        sources = ", ".join(f"`{r.source.__name__}`" for r in rules)
        note = rules[0].note.replace("|", "\\|")
        exact = "" if rules[0].exact else " *(not first-step exact)*"
        lines.append(f"| {sources} | {note}{exact} | {_target(rules[0])} |")
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    """``text`` (the page) with every marked block regenerated."""
    return _BLOCK.sub(lambda m: m.group(1) + table(m.group(2), m.group(3)) + m.group(5), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    old = PAGE.read_text()
    new = render(old)
    if args.check:
        if new != old:
            print(f"{PAGE} is out of date: run python docs/rule_tables.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
