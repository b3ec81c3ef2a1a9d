"""The run cache of the sweep benchmarks (``width_sweep.py``, ``depth_sweep.py``).

A JSON file ``{"settings": {...}, "runs": {key: result}}``, rewritten atomically after every
run, so a stopped sweep resumes where it was; runs made with other settings are refused.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from snn_singlestep.core.io import atomic_write


def open_cache(path: pathlib.Path, settings: dict, parser: argparse.ArgumentParser) -> dict:
    """The cache at ``path`` (empty if there is none); ``parser.error`` if it was made with
    other ``settings``."""
    cache = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    if cache.get("settings", settings) != settings:
        parser.error(f"{path} holds runs made with {cache['settings']}; use another --out")
    cache["settings"] = settings
    return cache


def save_cache(path: pathlib.Path, cache: dict) -> None:
    with atomic_write(path, "w") as f:
        f.write(json.dumps(cache, indent=1))
