"""Installed packages' versions, looked up without importing them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version(distribution: str) -> str | None:
    """An installed distribution's version, or None."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
