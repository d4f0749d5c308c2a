"""Streaming detection engine for CI/CD audit logs."""

import os

__version__ = "0.1.0"

if os.environ.get("DETECTOR_PYTHON") == "1":
    from detector.uncompiled import run_from_source

    run_from_source()
