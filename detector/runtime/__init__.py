"""Runtimes: the same stages wired for one process (embedded) or for Kafka workers."""
