"""Detections arriving in the JSON-lines files a service writes (its `file` sinks and the
staging output), read from where each file ended when the drill started."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson


class OutputWatcher:
    """New complete lines of each file since the watcher was made; a file that does not
    exist yet is read from its start once it appears."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.offsets = {path: path.stat().st_size if path.exists() else 0 for path in paths}
        self._partial = {path: b"" for path in paths}

    def poll(self) -> list[dict[str, Any]]:
        """The detections written since the last poll."""
        found: list[dict[str, Any]] = []
        for path, offset in self.offsets.items():
            if not path.exists():
                continue
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            self.offsets[path] = offset + len(chunk)
            data = self._partial[path] + chunk
            *lines, self._partial[path] = data.split(b"\n")
            found.extend(orjson.loads(line) for line in lines if line.strip())
        return found
