"""Fixtures of the intake tests: a real intake server on 127.0.0.1 (ephemeral port) and a
real HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from detector.intake.queue import RecordQueue
from detector.intake.server import IntakeServer
from detector.intake.settings import IntakeSettings
from tests.intake.support import ENVIRON, SOURCES, Running, StartIntake, intake_settings


@pytest.fixture
async def start_intake() -> AsyncIterator[StartIntake]:
    """start_intake(settings=intake_settings(), scheme="http") -> Running; stopped after."""
    servers: list[IntakeServer] = []

    async def start(settings: IntakeSettings | None = None, scheme: str = "http") -> Running:
        settings = settings or intake_settings()
        queue = RecordQueue(settings.queue_capacity_bytes)
        registry = CollectorRegistry()
        server = IntakeServer(settings, queue, sources=SOURCES, registry=registry, environ=ENVIRON)
        await server.start()
        servers.append(server)
        return Running(server, queue, registry, f"{scheme}://127.0.0.1:{server.port}")

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
