"""The intake on its listening socket: TLS, start, drain and stop.

Client certificates: with `tls.client_ca_file` set, a certificate a client presents is
verified against that CA. When every served route requires one, the TLS handshake
itself requires it (`CERT_REQUIRED`: a client without one never gets to send a
request); when only some do, certificates are optional at the handshake and those
routes answer 401 without a verified one, so senders that cannot present a
certificate (GitLab, GitHub) can share the listener.
"""

from __future__ import annotations

import ssl
from collections.abc import Collection, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry

from detector.intake.app import INTAKE, create_app
from detector.intake.queue import RecordQueue
from detector.intake.settings import IntakeConfigError, IntakeSettings


def server_ssl_context(settings: IntakeSettings) -> ssl.SSLContext | None:
    """The TLS context of the listener, None for plain HTTP."""
    tls = settings.tls
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=tls.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise IntakeConfigError(f"intake TLS: {exc}") from None
    if tls.client_ca_file is not None:
        routes = settings.routes().values()
        required = bool(routes) and all(route.require_client_cert for route in routes)
        context.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    return context


class IntakeServer:
    """The intake application served on `settings.host`/`settings.port`."""

    def __init__(
        self,
        settings: IntakeSettings,
        queue: RecordQueue,
        *,
        sources: Collection[str],
        registry: CollectorRegistry,
        environ: Mapping[str, str] | None = None,
        shutdown_timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self.app = create_app(settings, queue, sources=sources, registry=registry, environ=environ)
        self._ssl = server_ssl_context(settings)
        # No access log: a line per request costs as much as the request's own work at
        # the rates the intake takes; the metrics count requests by route and outcome,
        # and rejections are logged.
        self._runner = web.AppRunner(self.app, shutdown_timeout=shutdown_timeout, access_log=None)

    async def start(self) -> None:
        """Listen; returns once the socket is bound."""
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.settings.host, self.settings.port, ssl_context=self._ssl
        )
        await site.start()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        port: int = self._runner.addresses[0][1]
        return port

    def drain(self) -> None:
        """Answer 503 (and not ready) to new requests while still listening."""
        self.app[INTAKE].drain()

    async def stop(self) -> None:
        """Drain, stop listening, let requests in flight finish, close connections."""
        self.drain()
        await self._runner.cleanup()
