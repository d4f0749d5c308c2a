"""Every system's actions over HTTPS: a private CA named in `verify_tls` is trusted, and a
certificate the client cannot verify is a final error, not one to retry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from detector.respond.actions import github, gitlab, jenkins, kubernetes, vault
from detector.respond.actions.base import Action, ActionError, SystemConnection
from detector.secrets import SecretRef
from tests.respond.contract_server import LocalServer, private_ca, serve
from tests.respond.github import fake_github
from tests.respond.gitlab import fake_gitlab
from tests.respond.jenkins.jenkins_server import JenkinsServer
from tests.respond.kubernetes.kubernetes_server import KubernetesServer
from tests.respond.vault.vault_server import VaultServer


@dataclass
class Case:
    """A stand-in with state to change, and the action that changes it."""

    server: LocalServer
    api_path: str  # where the API is under the server's URL
    secret: str
    action: type[Action[Any]]
    params: BaseModel
    took_effect: Callable[[], bool]


def github_case() -> Case:
    fake = fake_github.new_fake()
    params = github.OrgUserParams(org="acme", username="mallory")
    return Case(
        fake.server,
        "/api/v3",
        fake_github.TOKEN,
        github.BlockUser,
        params,
        lambda: "mallory" in fake.blocks,
    )


def gitlab_case() -> Case:
    fake = fake_gitlab.new_fake()
    params = gitlab.RunnerParams(runner_id=30)
    return Case(
        fake.server, "", fake_gitlab.TOKEN, gitlab.PauseRunner, params, lambda: fake.runners[30]
    )


def kubernetes_case() -> Case:
    server = KubernetesServer("k8s-tls-token")
    path = "/apis/apps/v1/namespaces/ci/deployments/web"
    server.put(path, {"metadata": {"name": "web", "namespace": "ci"}, "spec": {"replicas": 2}})
    params = kubernetes.ScaleParams(namespace="ci", name="web")
    scaled = lambda: server.objects[path]["spec"]["replicas"] == 0  # noqa: E731
    return Case(server, "", "k8s-tls-token", kubernetes.ScaleToZero, params, scaled)


def jenkins_case() -> Case:
    server = JenkinsServer("responder", "11aa22bb33cc44dd55ee")
    params = jenkins.QuietDownParams()
    secret = "responder:11aa22bb33cc44dd55ee"
    return Case(server, "", secret, jenkins.QuietDown, params, lambda: server.quieting_down)


def vault_case() -> Case:
    server = VaultServer("hvs.tls-token")
    server.leases["db/creds/ci/1"] = {"id": "db/creds/ci/1", "ttl": 60}
    params = vault.RevokeLeaseParams(lease_id="db/creds/ci/1")
    return Case(server, "", "hvs.tls-token", vault.RevokeLease, params, lambda: not server.leases)


@pytest.mark.parametrize(
    "make", [github_case, gitlab_case, kubernetes_case, jenkins_case, vault_case]
)
async def test_a_private_ca_is_trusted_and_an_unverified_certificate_is_final(
    make: Callable[[], Case], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = make()
    monkeypatch.setenv("RESPONDER_SECRET", case.secret)
    context, ca_file = private_ca(tmp_path)
    async with serve(case.server, context):
        url, token = case.server.url + case.api_path, SecretRef(env="RESPONDER_SECRET")
        trusted = SystemConnection(url=url, token=token, verify_tls=ca_file)
        assert (await case.action(trusted).execute(case.params)).state == "done"
        assert case.took_effect()

        with pytest.raises(ActionError) as raised:
            await case.action(SystemConnection(url=url, token=token)).verify(case.params)
    assert raised.value.retryable is False
    assert "TLS" in str(raised.value)
