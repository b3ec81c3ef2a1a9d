"""docs/collapse.md renders the registered rules: the rule docstrings are the one source."""

import importlib.util
import pathlib

import pytest

import snn_singlestep as ss

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("rule_tables", ROOT / "docs" / "rule_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_collapse_page_tables_are_generated_from_the_rules():
    gen = _generator()
    page = (ROOT / "docs" / "collapse.md").read_text()
    assert gen.render(page) == page, "docs/collapse.md is stale: run python docs/rule_tables.py"


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly"])
def test_every_neuron_rule_note_appears_in_the_page(framework):
    page = (ROOT / "docs" / "collapse.md").read_text()
    for rule in ss.list_rules(framework):
        assert rule.note and rule.note.replace("|", "\\|") in page, rule.source.__name__


def test_a_changed_rule_docstring_makes_the_page_stale():
    gen = _generator()
    page = (ROOT / "docs" / "collapse.md").read_text()
    rule = ss.convert.get_rule(__import__("snntorch").Leaky)

    def changed(m, ctx):
        """v₁ = 2·I (a different equation)."""
        return rule.fn(m, ctx)

    ss.register_rule(rule.source, changed, framework="snntorch")
    try:
        assert gen.render(page) != page
        assert "v₁ = 2·I (a different equation)." in gen.table("snntorch", "neurons")
    finally:
        ss.register_rule(rule.source, rule.fn, framework="snntorch", exact=rule.exact)
    assert gen.render(page) == page
