"""Elasticsearch and OpenSearch: the connection, the index templates the engine writes
into, bulk indexing, reading an index back in time order, and rules as their queries.

The two engines share the document APIs this package uses (bulk, index templates, data
streams, point in time with `search_after`); `connection.SearchConnection.kind` chooses
the official client of either, and the rest of the code does not care which it is.
"""
