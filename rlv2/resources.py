"""Where the repository's bundled folders (``sql/``, ``data/``) are, however rlv2 is installed."""

from __future__ import annotations

from pathlib import Path


def bundled_dir(name: str) -> Path:
    """Return the repository folder ``name``: inside the package when installed from a wheel.

    pyproject.toml maps ``sql/`` and ``data/`` into the wheel as ``rlv2/sql`` and
    ``rlv2/data``; in a checkout or an editable install they sit beside the package.
    """
    package = Path(__file__).resolve().parent
    inside = package / name
    return inside if inside.is_dir() else package.parent / name
