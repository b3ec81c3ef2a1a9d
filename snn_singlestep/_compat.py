"""Version checks for the host frameworks."""

from __future__ import annotations

import importlib.metadata
import warnings

from .errors import SingleStepWarning

__all__ = ["check_version"]


def check_version(dist: str, supported: tuple[str, ...]) -> None:
    """Warn once if the installed ``dist`` is not one of the ``supported`` release lines."""
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:  # vendored or editable copy
        return
    if not any(version == line or version.startswith(line + ".") for line in supported):
        warnings.warn(
            f"snn_singlestep was built and tested against {dist} {' / '.join(supported)}; "
            f"found {version}. Install a supported version if something breaks.",
            SingleStepWarning,
            stacklevel=3,
        )
