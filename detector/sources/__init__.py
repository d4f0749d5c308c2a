"""Sources: where raw records come from (files, stdin; later HTTP, Kafka, Elasticsearch)."""
