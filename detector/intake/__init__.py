"""The authenticated HTTP intake of the live service.

Senders (the Kubernetes audit webhook, GitLab audit streaming, GitHub webhooks and any
Standard Webhooks sender) POST to one route each; accepted bodies become raw records
on a bounded `RecordQueue` that the pipeline consumes. `create_app` builds the aiohttp
application, `IntakeServer` serves it.
"""

from detector.intake.app import create_app
from detector.intake.queue import QueueClosedError, RecordQueue
from detector.intake.server import IntakeServer, server_ssl_context
from detector.intake.settings import IntakeConfigError, IntakeSettings, RouteSettings
from detector.secrets import SecretRef

__all__ = [
    "IntakeConfigError",
    "IntakeServer",
    "IntakeSettings",
    "QueueClosedError",
    "RecordQueue",
    "RouteSettings",
    "SecretRef",
    "create_app",
    "server_ssl_context",
]
