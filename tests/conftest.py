"""Settings for every test.

Property tests check behaviour, not speed: hypothesis' per-example deadline and its
too-slow health check would turn a loaded CI machine into failures, so both are off.

The hot path runs compiled where `make compile` built it (see setup.py); a compiled module
older than its source would test yesterday's code, so the run stops and says so. With
DETECTOR_PYTHON=1 the tests run the Python source instead (`make unit-python`).
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("detector", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("detector")

ROOT = Path(__file__).resolve().parents[1]
#: touched by `make install` and `make compile` after each build of the compiled modules
BUILT = ROOT / "build" / ".compiled"


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("DETECTOR_PYTHON") == "1":
        return
    built = BUILT.stat().st_mtime if BUILT.exists() else 0.0
    for compiled in (ROOT / "detector").rglob("*.so"):
        source = compiled.with_name(compiled.name.split(".", 1)[0] + ".py")
        if source.stat().st_mtime > built:
            pytest.exit(
                f"{source} changed after it was compiled: run `make compile` "
                "(or delete the .so files to test the Python code)",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )
