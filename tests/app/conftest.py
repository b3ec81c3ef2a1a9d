"""Helpers shared by the app tests (``_fake_datasets``, ``_torchrun``) are importable by name."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
