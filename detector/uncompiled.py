"""`DETECTOR_PYTHON=1`: the engine runs from its Python source even where mypyc compiled
it (setup.py), to compare the two builds or to step through the hot path in a debugger."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import SOURCE_SUFFIXES, FileFinder, ModuleSpec, SourceFileLoader
from types import ModuleType

#: what the package's modules are found as: their source files only
_SOURCES = (SourceFileLoader, SOURCE_SUFFIXES)


class _SourceFinder(MetaPathFinder):
    """Finds the package's modules as Python source, ahead of their compiled builds."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if path is None or not fullname.startswith("detector."):
            return None
        for entry in path:
            spec = FileFinder(entry, _SOURCES).find_spec(fullname)
            if spec is not None:
                return spec
        return None


def run_from_source() -> None:
    """Import the package's modules from here on from their source."""
    sys.meta_path.insert(0, _SourceFinder())
