"""The authenticated HTTP intake of the live service.

Senders (the Kubernetes audit webhook, GitLab audit streaming, GitHub webhooks and any
Standard Webhooks sender) POST to one route each; accepted bodies become raw records
on a bounded `queue.RecordQueue` that the pipeline consumes. `app.create_app` builds the
aiohttp application, `server.IntakeServer` serves it.
"""
