"""`detector run` end to end: every route in, signed alerts out, in one process and with
the records' work in worker processes.

A subprocess serves HTTPS with the shipped rule pack (and a Bitbucket rule for the
declared source). Each sender posts what it really sends: the API server's audit
webhook an `EventList` with its bearer token over mutual TLS, GitHub a `workflow_job`
delivery signed with `X-Hub-Signature-256`, GitLab a streamed audit event with its
verification token, and a Bitbucket forwarder a Standard Webhooks post. Every detection
reaches a local receiver that verifies its signature, once; no secret reaches the logs.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest
import trustme

from detector.config import DEFAULT_RULES
from detector.normalize.base import content_id
from tests.e2e.service_helpers import (
    BITBUCKET_RULE,
    EVENT_LIST,
    EVENT_LIST_ALERTS,
    JOB_ALERT,
    ROUTES,
    SERVICE_ENVIRON,
    DetectorService,
    Receiver,
    alerts,
    bitbucket_headers,
    bitbucket_permission_granted,
    github_job_headers,
    gitlab_alerts,
    gitlab_event,
    gitlab_headers,
    kubernetes_headers,
    post,
    public_workflow_job,
    service_config,
    wait_for,
    webhook_output,
)

BITBUCKET = bitbucket_permission_granted()
#: (rule title, evidence event id) of every alert the four posts must raise, once each.
EXPECTED = {
    *EVENT_LIST_ALERTS,
    JOB_ALERT,
    *gitlab_alerts("48230"),
    ("Bitbucket Global Permission Granted", content_id(orjson.loads(BITBUCKET))),
}


class Pki:
    """A server certificate for 127.0.0.1 and a CA for the API server's client certificate."""

    def __init__(self, directory: Path) -> None:
        self.server_ca, self.client_ca = trustme.CA(), trustme.CA()
        server = self.server_ca.issue_cert("127.0.0.1")
        server.private_key_and_cert_chain_pem.write_to_path(directory / "server.pem")
        self.client_ca.cert_pem.write_to_path(directory / "clients.pem")
        self.tls = {
            "cert_file": str(directory / "server.pem"),
            "key_file": str(directory / "server.pem"),
            "client_ca_file": str(directory / "clients.pem"),
        }

    def client(self, certificate: bool = False) -> ssl.SSLContext:
        """A client trusting the server; with the API server's certificate if asked."""
        context = ssl.create_default_context()
        self.server_ca.configure_trust(context)
        if certificate:
            self.client_ca.issue_cert("kube-apiserver-audit").configure_cert(context)
        return context


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two worker processes"])
async def test_every_route_becomes_signed_alerts(tmp_path: Path, workers: int) -> None:
    pki = Pki(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bitbucket_global_permission_granted.yml").write_text(BITBUCKET_RULE)
    receiver = Receiver()
    await receiver.start()
    routes = {**ROUTES, "kubernetes": {**ROUTES["kubernetes"], "require_client_cert": True}}
    config = service_config(
        tmp_path, [webhook_output("hooks", receiver.url("/alerts"))], {**routes, "tls": pki.tls}
    )
    config["rules"] = {"paths": [str(DEFAULT_RULES), str(rules)]}
    config["service"]["workers"] = workers
    service = DetectorService(config, tmp_path)
    service.start()
    anonymous, apiserver = pki.client(), pki.client(certificate=True)
    try:
        async with aiohttp.ClientSession() as client:
            await service.ready(client, ssl=anonymous)

            # The Kubernetes route asks for the client certificate as well as the token.
            url = service.url("kubernetes")
            answer = await post(client, url, EVENT_LIST, kubernetes_headers(), ssl=anonymous)
            assert answer.status == 401
            answer = await post(client, url, EVENT_LIST, kubernetes_headers(), ssl=apiserver)
            assert (answer.status, answer.text) == (202, '{"accepted": 1}')
            job = public_workflow_job()
            headers = github_job_headers(job, "5f0c1e2a-cc78-11ef-9b1d-3d5e1c0a7a11")
            signatures = [headers["X-Hub-Signature-256"]]
            answer = await post(client, service.url("github"), job, headers, ssl=anonymous)
            assert (answer.status, answer.headers["X-Request-Id"]) == (
                202,
                "5f0c1e2a-cc78-11ef-9b1d-3d5e1c0a7a11",
            )
            gitlab = gitlab_event()
            headers = gitlab_headers(gitlab)
            answer = await post(client, service.url("gitlab"), gitlab, headers, ssl=anonymous)
            assert answer.status == 202
            headers = bitbucket_headers(BITBUCKET, "msg_2pQbT0kS1yUe7Wn4Zc8Rv3Lx")
            signatures.append(headers["webhook-signature"])
            url = service.url("generic/bitbucket")
            answer = await post(client, url, BITBUCKET, headers, ssl=anonymous)
            assert answer.status == 202

            await wait_for(lambda: service.settled(client, 4), 30, "every alert delivered")
            metrics = await service.metrics(client)
            for route in ("kubernetes", "github", "gitlab", "generic/bitbucket"):
                assert metrics.value("detector_intake_records_total", route=route) == 1
            assert metrics.value("detector_intake_requests_total", outcome="unauthorized") == 1, (
                "only the post without a client certificate"
            )
    finally:
        code = await service.stop()
        await receiver.stop()
    assert code == 0, service.output()
    assert receiver.forged == 0
    delivered = receiver.delivered("/alerts")
    assert len({d["id"] for d in delivered}) == len(delivered), "each alert delivered once"
    assert alerts(delivered) == dict.fromkeys(EXPECTED, 1)
    by_title = {d["rule"]["title"]: d for d in delivered}
    bitbucket_alert = by_title["Bitbucket Global Permission Granted"]
    assert bitbucket_alert["@timestamp"] == "2025-11-26T09:10:58.120000Z"
    assert bitbucket_alert["evidence"][0]["source"] == "bitbucket"
    gitlab_alert = by_title["GitLab Protected Branch Removed"]
    assert gitlab_alert["rule"]["level"] == "high"
    assert gitlab_alert["evidence"][0] == {
        "id": "48230",
        "@timestamp": "2025-02-11T09:16:40.512000Z",
        "source": "gitlab",
        "action": "protected_branch_removed",
        "actor": "Mallory",
    }
    job_alert = by_title["GitHub Actions Job on a Self-Hosted Runner in a Public Repository"]
    assert job_alert["evidence"][0]["source"] == "github_actions"
    assert job_alert["evidence"][0]["actor"] == "alice"
    printed = service.output()
    assert ("worker processes started" in printed) == (workers > 1)
    exposed = [s for s in [*SERVICE_ENVIRON.values(), *signatures] if s in printed]
    assert exposed == [], "no secret or signature in what the service prints"
    assert (tmp_path / "state.json").exists(), "the correlation state is checkpointed on stop"


def test_config_check_says_what_run_would_do_without_a_secret(tmp_path: Path) -> None:
    outputs = [webhook_output("hooks", "http://127.0.0.1:9/alerts")]
    config = service_config(tmp_path, outputs, ROUTES)
    service = DetectorService(config, tmp_path)
    check = subprocess.run(
        [sys.executable, "-m", "detector", "config", "check", str(service.config_path)],
        env=service.environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rules, *lines = check.stdout.splitlines()
    staging = re.escape(str(tmp_path / "staging.jsonl"))
    shipped = re.escape(str(DEFAULT_RULES))
    pattern = (
        rf"rules: \d+ rules and \d+ correlations from {shipped} "
        rf"\(\d+ experimental, staged to {staging}\)"
    )
    assert re.fullmatch(pattern, rules), rules
    assert lines == [
        f"intake: {service.base}",
        "  /intake/kubernetes: enabled, secret from the environment variable K8S_TOKEN",
        "  /intake/gitlab: enabled, secret from the environment variable GITLAB_TOKEN",
        "  /intake/github: enabled, secret from the environment variable GITHUB_SECRET",
        "  /intake/generic/bitbucket: enabled, secret from the environment variable "
        "BITBUCKET_WHSEC",
        f"sinks (outboxes in {tmp_path / 'outbox'}):",
        "  hooks: webhook",
        "processes: one does everything (service.workers: 1)",
        f"dead letters: {tmp_path / 'dead.jsonl'}",
        "identities: no map (each user.name is its own user.identity)",
        f"correlation: allowed lateness 300s, checkpoint {tmp_path / 'state.json'} every 60s",
        f"metrics: {service.metrics_url}",
    ]
    assert not [s for s in SERVICE_ENVIRON.values() if s in check.stdout + check.stderr]


def test_service_workers_are_refused_with_the_kafka_runtime(tmp_path: Path) -> None:
    config = service_config(tmp_path, [], ROUTES)
    config["service"]["workers"] = 2
    service = DetectorService(config, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "detector", "run", "--config", str(service.config_path),
         "--kafka", "127.0.0.1:9"],
        env=service.environ, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "service.workers applies to the embedded runtime" in result.stderr
