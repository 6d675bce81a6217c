"""
lc_trace's version, read from the installed distribution's metadata: ``pyproject.toml`` is the only place it is written.
"""

from importlib import metadata

try:
    VERSION: str = metadata.version("lc_trace")
except metadata.PackageNotFoundError:
    VERSION = "0+unknown"

__all__ = ["VERSION"]
