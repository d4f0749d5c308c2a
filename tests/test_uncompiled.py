"""DETECTOR_PYTHON=1 runs the hot path from its Python source, also where it is compiled."""

from __future__ import annotations

import os
import subprocess
import sys

#: prints where two compiled modules were imported from
SHOW = (
    "import detector.pipeline, detector.normalize.kubernetes as k;"
    "print(detector.pipeline.__file__); print(k.__file__)"
)


def test_detector_python_imports_the_hot_path_from_its_source() -> None:
    shown = subprocess.run(
        [sys.executable, "-c", SHOW],
        env={**os.environ, "DETECTOR_PYTHON": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(shown) == 2
    assert all(path.endswith(".py") for path in shown), shown
