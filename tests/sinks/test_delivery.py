"""Delivery to real endpoints on 127.0.0.1: signed, retried, never lost, never doubled."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from detector.detections import Detection
from detector.sinks.delivery import DeliveryWorker
from detector.sinks.dispatcher import Dispatcher
from detector.sinks.jsonlines import JsonLinesSink
from detector.sinks.pagerduty import PagerDutySink, pagerduty_event
from detector.sinks.settings import RetryPolicy
from detector.sinks.slack import SlackSink, slack_message
from detector.sinks.webhook import WebhookSink

SECRET = "whsec_" + base64.b64encode(b"detector-test-signing-key-32byte").decode()
ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12"
SLACK_PATH = "/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"

Worker = Callable[..., DeliveryWorker]
Until = Callable[..., Awaitable[None]]
Metric = Callable[..., float]


def answers(*statuses: int) -> Callable[..., Awaitable[web.Response]]:
    """A responder answering `statuses` in turn, then 200."""
    queue = iter(statuses)

    async def respond(_: Any) -> web.Response:
        return web.Response(status=next(queue, 200), text="busy")

    return respond


@pytest.fixture
def refusing() -> Iterator[socket.socket]:
    """A socket bound on 127.0.0.1 without listening: connections to its port are refused
    until it is closed and a receiver takes the port."""
    with socket.socket() as placeholder:
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        placeholder.bind(("127.0.0.1", 0))
        yield placeholder


async def test_webhook_deliveries_carry_a_standard_webhooks_signature(
    receiver, worker: Worker, detection: Callable[..., Detection]
) -> None:
    hook = await receiver()
    deliver = worker(WebhookSink("hooks", hook.url(), SECRET))
    deliver.start()
    one = detection(1)
    assert deliver.enqueue(one) is True
    await hook.wait(lambda: len(hook.accepted()) == 1)

    request = hook.requests[0]
    assert request.body == one.to_json()
    assert request.headers["Content-Type"] == "application/json"
    assert request.webhook_id == one.id
    assert Webhook(SECRET).verify(request.body, request.headers) == one.to_dict()
    other = "whsec_" + base64.b64encode(b"another-key-of-thirty-two-bytes!").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(request.body, request.headers)


async def test_retries_keep_the_webhook_id_and_sign_each_attempt(
    receiver, worker: Worker, detection: Callable[..., Detection], metric: Metric, until: Until
) -> None:
    hook = await receiver(respond=answers(503, 500))
    deliver = worker(WebhookSink("hooks", hook.url(), SECRET))
    deliver.start()
    one = detection(1)
    deliver.enqueue(one)
    await hook.wait(lambda: len(hook.accepted()) == 1)
    await until(lambda: len(deliver.outbox) == 0)

    assert [r.status for r in hook.requests] == [503, 500, 200]
    assert [r.webhook_id for r in hook.requests] == [one.id] * 3
    for request in hook.requests:
        assert Webhook(SECRET).verify(request.body, request.headers) == one.to_dict()
    assert metric("detector_sink_failures_total", sink="hooks") == 2
    assert metric("detector_sink_retries_total", sink="hooks") == 2
    assert metric("detector_sink_deliveries_total", sink="hooks") == 1
    assert metric("detector_sink_outbox_depth", sink="hooks") == 0


async def test_pagerduty_and_slack_receive_their_documented_payloads(
    receiver, worker: Worker, detection: Callable[..., Detection], until: Until
) -> None:
    async def events_api(_: Any) -> web.Response:
        return web.json_response({"status": "success", "message": "Event processed"}, status=202)

    pagerduty = await receiver(respond=events_api)
    slack = await receiver()
    paging = worker(PagerDutySink("oncall", ROUTING_KEY, pagerduty.url("/v2/enqueue")))
    chat = worker(SlackSink("chat", slack.url(SLACK_PATH), "detector replay <logs>"))
    one = detection(1)
    async with Dispatcher([paging, chat]) as dispatcher:
        dispatcher.enqueue(one)
        await pagerduty.wait(lambda: len(pagerduty.accepted()) == 1)
        await slack.wait(lambda: len(slack.accepted()) == 1)
        await until(lambda: len(paging.outbox) == len(chat.outbox) == 0)

    assert pagerduty.requests[0].path == "/v2/enqueue"
    assert pagerduty.requests[0].json() == pagerduty_event(one, ROUTING_KEY)
    assert slack.requests[0].path == SLACK_PATH
    assert slack.requests[0].json() == slack_message(one, "detector replay <logs>")


async def test_an_endpoint_down_for_a_while_gets_every_detection_exactly_once(
    receiver,
    refusing: socket.socket,
    worker: Worker,
    detection: Callable[..., Detection],
    metric: Metric,
    until: Until,
) -> None:
    port = refusing.getsockname()[1]
    deliver = worker(WebhookSink("hooks", f"http://127.0.0.1:{port}/hook", SECRET))
    deliver.start()
    sent = [detection(n) for n in range(1, 6)]
    for one in sent:
        deliver.enqueue(one)
    await until(lambda: metric("detector_sink_failures_total", sink="hooks") >= 3)

    refusing.close()  # back up, though still busy for its first two answers
    hook = await receiver(port=port, respond=answers(503, 503))
    await hook.wait(lambda: len(hook.accepted()) == 5)
    await until(lambda: len(deliver.outbox) == 0)

    assert Counter(r.webhook_id for r in hook.accepted()) == {one.id: 1 for one in sent}
    assert metric("detector_sink_deliveries_total", sink="hooks") == 5
    assert metric("detector_sink_retries_total", sink="hooks") == metric(
        "detector_sink_failures_total", sink="hooks"
    )
    assert metric("detector_sink_outbox_depth", sink="hooks") == 0
    assert not deliver.dead_letters.path.exists()


async def test_a_stop_in_the_middle_keeps_the_rest_for_the_restart(
    receiver, worker: Worker, detection: Callable[..., Detection], until: Until
) -> None:
    async def hold_the_second(_: Any) -> web.Response:
        if len(hook.requests) == 2:
            await hook.release.wait()
        return web.Response(status=204)

    hook = await receiver(respond=hold_the_second)
    sent = [detection(n) for n in range(1, 7)]
    first = worker(WebhookSink("hooks", hook.url(), SECRET))
    first.start()
    for one in sent:
        first.enqueue(one)
    await hook.wait(lambda: len(hook.requests) == 2)  # the second is in flight
    stopping = asyncio.create_task(first.stop(timeout=10))
    await until(lambda: first.stopping)
    hook.release.set()  # the attempt in flight finishes within the stop's timeout
    await stopping
    assert [r.webhook_id for r in hook.requests] == [one.id for one in sent[:2]]

    second = worker(WebhookSink("hooks", hook.url(), SECRET))  # same outbox directory
    assert [pending.id for pending in second.outbox] == [one.id for one in sent[2:]]
    assert [second.enqueue(one) for one in sent] == [False] * 6  # a replay adds nothing
    second.start()
    await hook.wait(lambda: len(hook.accepted()) == 6)
    await until(lambda: len(second.outbox) == 0)
    assert Counter(r.webhook_id for r in hook.requests) == {one.id: 1 for one in sent}


async def test_an_attempt_cut_off_by_the_stop_is_sent_again_under_the_same_id(
    receiver, worker: Worker, detection: Callable[..., Detection], until: Until
) -> None:
    async def hang(_: Any) -> web.Response:
        await hook.release.wait()
        return web.Response(status=200)

    hook = await receiver(respond=hang)
    one = detection(1)
    first = worker(WebhookSink("hooks", hook.url(), SECRET))
    first.start()
    first.enqueue(one)
    await hook.wait(lambda: len(hook.requests) == 1)
    await first.stop(timeout=0)

    hook.respond = answers()
    second = worker(WebhookSink("hooks", hook.url(), SECRET))
    second.start()
    await hook.wait(lambda: len(hook.accepted()) == 1)
    await until(lambda: len(second.outbox) == 0)
    # At least once: the receiver deduplicates on webhook-id, as the standard says.
    assert [r.webhook_id for r in hook.requests] == [one.id, one.id]
    assert hook.requests[0].body == hook.requests[1].body


async def test_a_rejected_detection_is_dead_lettered_at_once_with_the_reason(
    receiver, worker: Worker, detection: Callable[..., Detection], metric: Metric, until: Until
) -> None:
    async def invalid(_: Any) -> web.Response:
        return web.Response(status=400, text="invalid_payload")

    slack = await receiver(respond=invalid)
    chat = worker(SlackSink("chat", slack.url(SLACK_PATH), "detector replay <logs>"))
    chat.start()
    sent = [detection(1), detection(2)]
    for one in sent:
        chat.enqueue(one)
    await until(
        lambda: metric("detector_sink_dead_letters_total", sink="chat", reason="rejected") == 2
    )

    assert len(slack.requests) == 2  # no second attempt
    letters = [orjson.loads(line) for line in chat.dead_letters.path.read_bytes().splitlines()]
    assert [letter["detection"] for letter in letters] == [one.to_dict() for one in sent]
    for letter in letters:
        assert letter.keys() == {
            "reason",
            "sink",
            "attempts",
            "enqueued_at",
            "dead_lettered_at",
            "detection",
        }
        assert (letter["reason"], letter["sink"], letter["attempts"]) == (
            "HTTP 400: invalid_payload",
            "chat",
            1,
        )
        assert re.fullmatch(TIME, letter["enqueued_at"])
        assert letter["enqueued_at"] <= letter["dead_lettered_at"]
    assert len(chat.outbox) == 0
    assert metric("detector_sink_outbox_depth", sink="chat") == 0
    assert chat.enqueue(sent[0]) is False  # settled: not tried again


async def test_a_detection_past_its_deadline_is_dead_lettered(
    receiver, worker: Worker, detection: Callable[..., Detection], metric: Metric, until: Until
) -> None:
    async def down(_: Any) -> web.Response:
        return web.Response(status=503, text="down for maintenance")

    hook = await receiver(respond=down)
    policy = RetryPolicy(base=0.01, cap=0.02, deadline=0.3, timeout=5)
    deliver = worker(WebhookSink("hooks", hook.url(), SECRET), policy)
    deliver.start()
    deliver.enqueue(detection(1))
    await until(
        lambda: metric("detector_sink_dead_letters_total", sink="hooks", reason="deadline") == 1
    )

    letter = orjson.loads(deliver.dead_letters.path.read_bytes())
    match = re.fullmatch(
        r"not delivered within the deadline of 0\.3s \((\d+) attempts;"
        r" last error: HTTP 503: down for maintenance\)",
        letter["reason"],
    )
    assert match is not None, letter["reason"]
    attempts = int(match.group(1))
    assert attempts == letter["attempts"] == len(hook.requests) >= 2
    assert len(deliver.outbox) == 0


async def test_retry_after_is_honoured(
    receiver, worker: Worker, detection: Callable[..., Detection]
) -> None:
    throttled: list[bool] = []

    async def throttle(_: Any) -> web.Response:
        if not throttled:
            throttled.append(True)
            return web.Response(status=429, headers={"Retry-After": "1"}, text="slow down")
        return web.Response(status=202)

    hook = await receiver(respond=throttle)
    deliver = worker(PagerDutySink("oncall", ROUTING_KEY, hook.url()))
    deliver.start()
    deliver.enqueue(detection(1))
    await hook.wait(lambda: len(hook.accepted()) == 1)
    first, second = hook.requests
    assert second.at - first.at >= 1.0


async def test_a_hanging_endpoint_delays_neither_detection_nor_the_other_sinks(
    receiver, worker: Worker, detection: Callable[..., Detection]
) -> None:
    async def hang(_: Any) -> web.Response:
        await slow.release.wait()
        return web.Response(status=200)

    slow = await receiver(respond=hang)
    fast = await receiver()
    patient = RetryPolicy(base=0.01, cap=0.05, deadline=600, timeout=600)
    hanging = worker(WebhookSink("slow", slow.url(), SECRET), patient)
    paging = worker(PagerDutySink("fast", ROUTING_KEY, fast.url()))
    dispatcher = Dispatcher([hanging, paging], stop_timeout=0)
    dispatcher.start()
    sent = [detection(n) for n in range(1, 4)]
    for one in sent:
        dispatcher.enqueue(one)  # returns at once: the outboxes are local
    await fast.wait(lambda: len(fast.accepted()) == 3)

    assert [r.json()["dedup_key"] for r in fast.accepted()] == [one.id for one in sent]
    assert len(slow.requests) == 1 and slow.requests[0].status is None  # still hanging
    assert [pending.id for pending in hanging.outbox] == [one.id for one in sent]
    await dispatcher.stop()


async def test_no_secret_reaches_the_logs_or_the_files(
    receiver,
    refusing: socket.socket,
    worker: Worker,
    detection: Callable[..., Detection],
    metric: Metric,
    until: Until,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: set[str] = set()

    async def echo(request: Any) -> web.Response:
        """Busy, then refusing; both answers quote the request, as some endpoints do."""
        status = 400 if request.path in seen else 503
        seen.add(request.path)
        return web.Response(status=status, text=f"cannot take {request.path}: {request.body!r}")

    endpoint = await receiver(respond=echo)
    down_url = f"http://127.0.0.1:{refusing.getsockname()[1]}/services/T0002/B0002/YYYYYYYY"
    sinks = [
        WebhookSink("hooks", endpoint.url("/hook"), SECRET),
        PagerDutySink("oncall", ROUTING_KEY, endpoint.url("/v2/enqueue")),
        SlackSink("chat", endpoint.url(SLACK_PATH), "detector replay <logs>"),
        SlackSink("chat-down", down_url, "detector replay <logs>"),
    ]
    policy = RetryPolicy(base=0.01, cap=0.02, deadline=0.5, timeout=5)
    workers = [worker(sink, policy) for sink in sinks]
    async with Dispatcher(workers) as dispatcher:
        dispatcher.enqueue(detection(1))
        for sink in sinks:
            await until(
                lambda name=sink.name: (
                    sum(
                        metric("detector_sink_dead_letters_total", sink=name, reason=reason)
                        for reason in ("rejected", "deadline")
                    )
                    == 1
                )
            )

    secrets = [
        SECRET,
        SECRET.removeprefix("whsec_"),
        ROUTING_KEY,
        endpoint.url(SLACK_PATH),
        SLACK_PATH,
        down_url,
        "/services/T0002/B0002/YYYYYYYY",
    ]
    written = {path: path.read_text() for path in tmp_path.rglob("*") if path.is_file()}
    assert {path.name for path in written} >= {"journal.jsonl", "deadletter.jsonl"}
    for text in [caplog.text, *written.values()]:
        for secret in secrets:
            assert secret not in text
    # The endpoint did quote the routing key and the Slack path; they were masked.
    assert "cannot take [REDACTED]" in caplog.text
    assert '"routing_key":"[REDACTED]"' in caplog.text


async def test_json_lines_go_to_a_file_and_to_standard_output(
    tmp_path: Path,
    worker: Worker,
    detection: Callable[..., Detection],
    until: Until,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    siem = worker(JsonLinesSink("siem", tmp_path / "out" / "detections.jsonl"))
    console = worker(JsonLinesSink("console"))
    sent = [detection(1), detection(2)]
    async with Dispatcher([siem, console]) as dispatcher:
        for one in [*sent, sent[0]]:
            dispatcher.enqueue(one)
        await until(lambda: len(siem.outbox) == len(console.outbox) == 0)

    lines = [one.to_json() + b"\n" for one in sent]
    assert (tmp_path / "out" / "detections.jsonl").read_bytes() == b"".join(lines)
    assert capsysbinary.readouterr().out == b"".join(lines)


async def test_a_token_quoted_from_the_logs_is_masked_before_it_leaves(
    receiver, worker: Worker, detection: Callable[..., Detection], until: Until, tmp_path: Path
) -> None:
    token = "ghp_" + "A1b2C3d4E5" * 4
    hook = await receiver()
    deliver = worker(WebhookSink("hooks", hook.url(), SECRET))
    deliver.start()
    leaky = detection(1, repository=f"acme/{token}")
    deliver.enqueue(leaky)
    await hook.wait(lambda: len(hook.accepted()) == 1)

    body = hook.requests[0].json()
    assert body["id"] == leaky.id
    assert (
        body["message"] == "Repository destroyed: mallory repo.destroy on acme/[REDACTED] (github)"
    )
    assert token not in (tmp_path / "hooks" / "journal.jsonl").read_text()


async def test_a_webhook_attempt_posts_up_to_in_flight_detections_at_once(
    receiver, worker: Worker, detection: Callable[..., Detection], until: Until
) -> None:
    async def hold(_: Any) -> web.Response:
        await hook.release.wait()
        return web.Response(status=204)

    hook = await receiver(respond=hold)
    deliver = worker(WebhookSink("hooks", hook.url(), SECRET, in_flight=3))
    deliver.start()
    sent = [detection(n) for n in range(1, 6)]
    for one in sent:
        deliver.enqueue(one)
    await hook.wait(lambda: len(hook.requests) == 3)  # three posts held open at once
    assert {r.webhook_id for r in hook.requests} == {one.id for one in sent[:3]}
    hook.release.set()
    await hook.wait(lambda: len(hook.accepted()) == 5)
    await until(lambda: len(deliver.outbox) == 0)
    assert Counter(r.webhook_id for r in hook.requests) == {one.id: 1 for one in sent}
