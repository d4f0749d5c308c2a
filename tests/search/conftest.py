"""The real search engines of `tests.search_engines`, for the SIEM tests."""

from tests.search_engines import elasticsearch, engine, opensearch

__all__ = ["elasticsearch", "engine", "opensearch"]
