"""Alert sinks: every detection reaches every configured endpoint, at least once.

A runtime builds a `Dispatcher` (`factory.build_dispatcher(settings.sinks, registry)`),
starts it, calls `enqueue(detection)` for each detection (durable and local when it returns),
or `submit(detection)` and, where it must know they are durable, `await committed()`
(group commit: one fsync for many detections, off the event loop), and stops it on
shutdown. Each sink has its own outbox on disk and its own delivery
worker with retries, a deadline and dead letters; see `delivery` and `outbox`.
"""
