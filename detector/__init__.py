"""Streaming detection engine for CI/CD audit logs."""

__version__ = "0.1.0"
