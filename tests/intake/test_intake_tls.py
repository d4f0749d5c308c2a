"""HTTPS and mutual TLS with real certificates (trustme): the Kubernetes webhook presents a
client certificate; GitLab and GitHub cannot, and may share the listener."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme

from detector.intake.server import server_ssl_context
from detector.intake.settings import IntakeConfigError, IntakeSettings
from tests.intake.support import (
    GITLAB_TOKEN,
    K8S_TOKEN,
    StartIntake,
    fixture,
    intake_settings,
)

EVENT_LIST = fixture("kubernetes/webhook-eventlist.json")
GITLAB_EVENT = fixture("gitlab/stream.jsonl").splitlines()[0]
K8S = {"Authorization": f"Bearer {K8S_TOKEN}"}
GITLAB = {"X-Gitlab-Event-Streaming-Token": GITLAB_TOKEN}


@dataclass
class Pki:
    server_ca: trustme.CA
    client_ca: trustme.CA
    tls: dict[str, str]

    def client(self, cert_from: trustme.CA | None = None) -> ssl.SSLContext:
        """A client trusting the server, with a certificate from `cert_from` if given."""
        context = ssl.create_default_context()
        self.server_ca.configure_trust(context)
        if cert_from is not None:
            cert_from.issue_cert("kube-apiserver-audit").configure_cert(context)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory: Path = tmp_path_factory.mktemp("pki")
    server_ca, client_ca = trustme.CA(), trustme.CA()
    server = server_ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(directory / "server.pem")
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(directory / "server.pem", append=True)
    server.private_key_pem.write_to_path(directory / "server.key")
    client_ca.cert_pem.write_to_path(directory / "clients.pem")
    tls = {
        "cert_file": str(directory / "server.pem"),
        "key_file": str(directory / "server.key"),
        "client_ca_file": str(directory / "clients.pem"),
    }
    return Pki(server_ca, client_ca, tls)


def k8s_only(pki: Pki) -> IntakeSettings:
    return intake_settings(
        tls=pki.tls,
        kubernetes={"secret": {"env": "K8S_TOKEN"}, "require_client_cert": True},
        gitlab=None,
        github=None,
        generic={},
    )


async def post(url: str, context: ssl.SSLContext, data: bytes, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers=headers, ssl=context) as response,
    ):
        return response.status


async def test_a_listener_only_for_mtls_routes_requires_the_certificate_in_the_handshake(
    start_intake: StartIntake, pki: Pki
) -> None:
    settings = k8s_only(pki)
    context = server_ssl_context(settings)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    intake = await start_intake(settings, scheme="https")
    url = f"{intake.url}/intake/kubernetes"
    with pytest.raises(aiohttp.ClientError):
        await post(url, pki.client(), EVENT_LIST, K8S)
    with pytest.raises(aiohttp.ClientError):
        await post(url, pki.client(cert_from=trustme.CA()), EVENT_LIST, K8S)
    assert len(intake.queue) == 0
    good = pki.client(cert_from=pki.client_ca)
    assert await post(url, good, EVENT_LIST, {"Authorization": "Bearer nope"}) == 401
    assert await post(url, good, EVENT_LIST, K8S) == 202
    [record] = await intake.take_all()
    assert record.data == EVENT_LIST


async def test_a_shared_listener_asks_the_certificate_of_the_routes_that_need_it(
    start_intake: StartIntake, pki: Pki
) -> None:
    settings = k8s_only(pki).model_copy(update={"gitlab": intake_settings().gitlab})
    context = server_ssl_context(settings)
    assert context is not None and context.verify_mode == ssl.CERT_OPTIONAL
    intake = await start_intake(settings, scheme="https")
    anonymous = pki.client()
    assert await post(f"{intake.url}/intake/gitlab", anonymous, GITLAB_EVENT, GITLAB) == 202
    assert await post(f"{intake.url}/intake/kubernetes", anonymous, EVENT_LIST, K8S) == 401
    with pytest.raises(aiohttp.ClientError):
        await post(f"{intake.url}/intake/gitlab", pki.client(trustme.CA()), GITLAB_EVENT, GITLAB)
    good = pki.client(cert_from=pki.client_ca)
    assert await post(f"{intake.url}/intake/kubernetes", good, EVENT_LIST, K8S) == 202
    assert [r.source for r in await intake.take_all()] == ["gitlab", "kubernetes"]
    assert (
        intake.metric("detector_intake_requests_total", route="kubernetes", outcome="unauthorized")
        == 1
    )


async def test_https_without_client_ca_serves_every_client(
    start_intake: StartIntake, pki: Pki
) -> None:
    tls = {k: v for k, v in pki.tls.items() if k != "client_ca_file"}
    settings = intake_settings(tls=tls)
    context = server_ssl_context(settings)
    assert context is not None and context.verify_mode == ssl.CERT_NONE
    intake = await start_intake(settings, scheme="https")
    assert await post(f"{intake.url}/intake/gitlab", pki.client(), GITLAB_EVENT, GITLAB) == 202


def test_unreadable_tls_files_are_a_configuration_error(pki: Pki, tmp_path: Path) -> None:
    settings = intake_settings(tls=pki.tls | {"key_file": str(tmp_path / "missing.key")})
    with pytest.raises(IntakeConfigError, match="intake TLS"):
        server_ssl_context(settings)


def test_a_route_requiring_client_certificates_needs_a_client_ca(pki: Pki) -> None:
    tls = {k: v for k, v in pki.tls.items() if k != "client_ca_file"}
    with pytest.raises(ValueError, match="route kubernetes requires client certificates"):
        intake_settings(
            tls=tls, kubernetes={"secret": {"env": "K8S_TOKEN"}, "require_client_cert": True}
        )
