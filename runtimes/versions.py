"""Installed versions of packages, from their metadata (nothing imported): manifests and reports record them."""
from __future__ import annotations

from importlib import metadata


def package_versions(*names: str) -> dict[str, str]:
    """{name: version} of those installed; the others are left out."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
