"""Where an installed package that ships a sample's data keeps its files, found without importing the package."""

from __future__ import annotations

from pathlib import Path

from headstart.errors import DataError


def package_folder(package: str, pip_name: str, source: str) -> Path:
    """The folder of an installed package that ships a sample's data, found without importing the package."""
    from importlib.util import find_spec

    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DataError(f"{source} needs the package {pip_name} (pip install {pip_name})")
    return Path(locations[0])
