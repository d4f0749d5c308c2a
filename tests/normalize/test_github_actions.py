"""GitHub Actions webhook normalizer: fixture payloads, mapping choices, robustness."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.events import Event
from detector.normalize.base import NormalizationError, content_id
from detector.normalize.github_actions import GitHubActionsNormalizer
from tests.strategies import JSON_VALUES as JSON

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sources" / "github_actions"
NORMALIZER = GitHubActionsNormalizer()


def payload(name: str) -> dict[str, Any]:
    record: dict[str, Any] = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    return record


def fields(record: dict[str, Any]) -> dict[str, Any]:
    """The normalized JSON shape without `raw`."""
    shape = NORMALIZER.normalize(record).to_dict()
    assert shape.pop("raw") == record
    return shape


JOB_COMMON = {
    "event.source": "github_actions",
    "event.category": ["process"],
    "user.name": "alice",
    "user.id": "1024",
    "user.type": "human",
    "repository": "octo-org/deploy-service",
    "organization": "octo-org",
    "resource.kind": "workflow_job",
    "resource.name": "deploy-prod",
    "branch": "main",
}

RUN_COMMON = {
    "event.source": "github_actions",
    "event.category": ["process"],
    "user.name": "mallory-ext",
    "user.id": "90210",
    "user.type": "human",
    "repository": "octo-org/deploy-service",
    "organization": "octo-org",
    "resource.kind": "workflow_run",
    "resource.name": "PR triage",
    "branch": "patch-1",
}


def test_logsource_is_github_actions() -> None:
    assert (NORMALIZER.name, NORMALIZER.product, NORMALIZER.service) == (
        "github_actions",
        "github",
        "actions",
    )


def test_every_fixture_is_recognized_and_serializable() -> None:
    names = sorted(path.stem for path in FIXTURES.glob("*.json"))
    assert names == [
        "workflow_job.completed",
        "workflow_job.in_progress",
        "workflow_job.queued",
        "workflow_run.completed",
        "workflow_run.requested",
    ]
    for name in names:
        record = payload(name)
        assert NORMALIZER.matches(record)
        assert orjson.loads(NORMALIZER.normalize(record).to_json())["raw"] == record


def test_job_queued_on_self_hosted_runner_takes_created_at() -> None:
    assert fields(payload("workflow_job.queued")) == {
        **JOB_COMMON,
        "@timestamp": "2024-09-10T14:02:11.000000Z",
        "event.id": "workflow_job:29679449637:1:queued",
        "event.action": "workflow_job.queued",
        "event.type": ["info"],
    }


def test_job_in_progress_takes_started_at() -> None:
    assert fields(payload("workflow_job.in_progress")) == {
        **JOB_COMMON,
        "@timestamp": "2024-09-10T14:02:19.000000Z",
        "event.id": "workflow_job:29679449637:1:in_progress",
        "event.action": "workflow_job.in_progress",
        "event.type": ["start"],
    }


def test_job_completed_takes_completed_at_and_conclusion() -> None:
    assert fields(payload("workflow_job.completed")) == {
        **JOB_COMMON,
        "@timestamp": "2024-09-10T14:05:47.000000Z",
        "event.id": "workflow_job:29679449637:1:completed",
        "event.action": "workflow_job.completed",
        "event.type": ["end"],
        "event.outcome": "success",
    }


def test_pull_request_target_run_requested_from_a_fork() -> None:
    assert fields(payload("workflow_run.requested")) == {
        **RUN_COMMON,
        "@timestamp": "2024-09-10T15:20:03.000000Z",
        "event.id": "workflow_run:10787195622:1:requested",
        "event.action": "workflow_run.requested",
        "event.type": ["info"],
    }


def test_run_completed_takes_updated_at() -> None:
    assert fields(payload("workflow_run.completed")) == {
        **RUN_COMMON,
        "@timestamp": "2024-09-10T15:21:40.000000Z",
        "event.id": "workflow_run:10787195622:1:completed",
        "event.action": "workflow_run.completed",
        "event.type": ["end"],
        "event.outcome": "success",
    }


def test_run_time_is_updated_at_for_every_action_so_reruns_get_their_own_time() -> None:
    record = payload("workflow_run.requested")
    run = record["workflow_run"]
    run.update(
        run_attempt=2, updated_at="2024-09-11T08:00:05Z", run_started_at="2024-09-11T08:00:05Z"
    )
    event = NORMALIZER.normalize(record)
    assert event.to_dict()["@timestamp"] == "2024-09-11T08:00:05.000000Z"
    assert event.event_id == "workflow_run:10787195622:2:requested"


def test_event_id_is_the_same_on_redelivery() -> None:
    first = NORMALIZER.normalize(payload("workflow_job.completed"))
    again = NORMALIZER.normalize(payload("workflow_job.completed"))
    assert first.event_id == again.event_id == "workflow_job:29679449637:1:completed"


def test_record_without_run_attempt_gets_a_content_id() -> None:
    record = payload("workflow_run.completed")
    del record["workflow_run"]["run_attempt"]
    assert NORMALIZER.normalize(record).event_id == content_id(record)


def test_rerun_user_is_the_triggering_actor_not_the_original_actor() -> None:
    record = payload("workflow_run.completed")
    record["workflow_run"]["triggering_actor"] = {
        "login": "octo-maintainer",
        "id": 77,
        "type": "User",
    }
    shape = fields(record)
    assert (shape["user.name"], shape["user.id"], shape["user.type"]) == (
        "octo-maintainer",
        "77",
        "human",
    )


def test_run_user_falls_back_to_actor_then_sender() -> None:
    record = payload("workflow_run.requested")
    del record["workflow_run"]["triggering_actor"]
    record["workflow_run"]["actor"] = {"login": "dependabot[bot]", "id": 49699333, "type": "Bot"}
    assert (fields(record)["user.name"], fields(record)["user.type"]) == ("dependabot[bot]", "bot")
    record["workflow_run"]["actor"] = None
    assert fields(record)["user.name"] == "mallory-ext"


def test_job_user_is_the_sender() -> None:
    record = payload("workflow_job.queued")
    record["sender"] = {"login": "renovate[bot]", "id": 29139614, "type": "Bot"}
    assert (fields(record)["user.name"], fields(record)["user.type"]) == ("renovate[bot]", "bot")


@pytest.mark.parametrize(("account_type", "expected"), [("Organization", None), (["User"], None)])
def test_other_account_types_stay_untyped(account_type: Any, expected: str | None) -> None:
    record = payload("workflow_job.queued")
    record["sender"]["type"] = account_type
    assert NORMALIZER.normalize(record).user_type is expected


@pytest.mark.parametrize(
    ("conclusion", "outcome"),
    [
        ("success", "success"),
        ("failure", "failure"),
        ("timed_out", "failure"),
        ("cancelled", "failure"),
        ("startup_failure", "failure"),
        ("skipped", "unknown"),
        ("neutral", "unknown"),
        ("action_required", "unknown"),
        ("stale", "unknown"),
        (None, "unknown"),
        (["success"], "unknown"),
    ],
)
def test_outcome_of_a_completed_run(conclusion: Any, outcome: str) -> None:
    record = payload("workflow_run.completed")
    record["workflow_run"]["conclusion"] = conclusion
    assert NORMALIZER.normalize(record).event_outcome == outcome


def test_no_outcome_before_completion_even_with_a_conclusion() -> None:
    record = payload("workflow_job.in_progress")
    record["workflow_job"]["conclusion"] = "failure"
    assert NORMALIZER.normalize(record).event_outcome is None


def test_queued_job_without_created_at_falls_back_to_started_at() -> None:
    record = payload("workflow_job.queued")
    del record["workflow_job"]["created_at"]
    record["workflow_job"]["started_at"] = "2021-08-05T10:33:58Z"
    assert NORMALIZER.normalize(record).to_dict()["@timestamp"] == "2021-08-05T10:33:58.000000Z"


def test_waiting_job_takes_created_at() -> None:
    record = payload("workflow_job.queued")
    record["action"] = "waiting"
    record["workflow_job"]["created_at"] = "2024-09-10T14:01:00Z"
    shape = fields(record)
    assert (shape["@timestamp"], shape["event.action"], shape["event.type"]) == (
        "2024-09-10T14:01:00.000000Z",
        "workflow_job.waiting",
        ["info"],
    )


def test_unknown_job_action_takes_the_most_advanced_time() -> None:
    record = payload("workflow_job.in_progress")
    record["action"] = "paused"
    shape = fields(record)
    assert (shape["@timestamp"], shape["event.action"]) == (
        "2024-09-10T14:02:19.000000Z",
        "workflow_job.paused",
    )


def test_run_without_name_is_named_after_its_workflow() -> None:
    record = payload("workflow_run.requested")
    record["workflow_run"]["name"] = ""
    record["workflow"]["name"] = "triage"
    assert NORMALIZER.normalize(record).resource_name == "triage"


def test_user_owned_repository_has_no_organization() -> None:
    record = payload("workflow_job.completed")
    del record["organization"]
    assert NORMALIZER.normalize(record).organization is None


@pytest.mark.parametrize(
    ("name", "change", "reason"),
    [
        ("workflow_job.completed", {"action": None}, "no action"),
        (
            "workflow_job.completed",
            {"workflow_job.completed_at": None},
            "no completed_at in workflow_job for action 'completed'",
        ),
        (
            "workflow_job.queued",
            {"workflow_job.created_at": None, "workflow_job.started_at": None},
            "no created_at or started_at in workflow_job for action 'queued'",
        ),
        ("workflow_run.completed", {"workflow_run.updated_at": None}, "no updated_at"),
        ("workflow_run.completed", {"workflow_run.updated_at": 1725981700}, "bad workflow_run"),
        ("workflow_job.in_progress", {"workflow_job.started_at": "yesterday"}, "not an ISO"),
        ("workflow_run.completed", {"repository": None}, "no workflow_job, or workflow_run"),
    ],
)
def test_normalization_errors_name_the_reason(
    name: str, change: dict[str, Any], reason: str
) -> None:
    record = payload(name)
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        target = record
        for parent in parents:
            target = target[parent]
        target[key] = value
    with pytest.raises(NormalizationError, match=reason):
        NORMALIZER.normalize(record)


def deployment_payload() -> dict[str, Any]:
    """A `deployment` webhook: it embeds a workflow run and its workflow."""
    run = payload("workflow_run.requested")
    return {
        "action": "created",
        "deployment": {"id": 875096709, "environment": "production", "task": "deploy"},
        "workflow": run["workflow"],
        "workflow_run": run["workflow_run"],
        "repository": run["repository"],
        "sender": run["sender"],
    }


def deployment_review_payload() -> dict[str, Any]:
    """A `deployment_review` webhook: a workflow run, action `requested`, no workflow."""
    run = payload("workflow_run.requested")
    return {
        "action": "requested",
        "environment": "production",
        "since": "2024-09-10T15:20:03Z",
        "workflow_run": run["workflow_run"],
        "workflow_job_run": {"id": 1, "name": "deploy", "status": "waiting"},
        "reviewers": [],
        "requestor": run["sender"],
        "repository": run["repository"],
        "organization": run["organization"],
        "sender": run["sender"],
    }


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(deployment_payload(), id="deployment-webhook"),
        pytest.param(deployment_review_payload(), id="deployment-review-webhook"),
        pytest.param(
            {"action": "completed", "workflow_job": {"id": 1}}, id="job-without-repository"
        ),
        pytest.param(
            {"action": "completed", "workflow_job": "x", "repository": {}}, id="job-not-object"
        ),
        pytest.param(
            {"action": "completed", "workflow_run": {"id": 1}, "repository": {}},
            id="run-without-workflow",
        ),
        pytest.param(
            {
                "@timestamp": 1725981700000,
                "action": "workflows.completed_workflow_run",
                "actor": "alice",
                "org": "octo-org",
                "repo": "octo-org/deploy-service",
                "workflow_run_id": 10787195622,
            },
            id="github-audit-log-entry",
        ),
        pytest.param(
            {"@timestamp": "2025-03-04T06:22:18+0000", "message": "/x by a from 10.0.0.1"},
            id="jenkins-elasticsearch-document",
        ),
        pytest.param({}, id="empty"),
    ],
)
def test_matches_rejects_other_records(record: dict[str, Any]) -> None:
    assert NORMALIZER.matches(record) is False


def test_job_with_deployment_context_is_still_a_job_event() -> None:
    record = payload("workflow_job.queued")
    record["deployment"] = {"id": 875096709, "environment": "production"}
    assert NORMALIZER.matches(record)


def test_normalize_leaves_the_record_untouched() -> None:
    record = payload("workflow_run.completed")
    before = copy.deepcopy(record)
    assert NORMALIZER.normalize(record).raw is record
    assert record == before


TIMES = st.sampled_from(
    ["2024-09-10T14:02:11Z", "2024-09-10T14:02:11.000Z", "2024-09-10T16:02:11+02:00"]
)
ACTIONS = st.sampled_from(["queued", "in_progress", "completed", "waiting", "requested", "other"])


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy | JSON


ACCOUNT = maybe(
    st.fixed_dictionaries(
        {}, optional={"login": JSON, "id": JSON, "type": maybe(st.sampled_from(["User", "Bot"]))}
    )
)
JOB_OR_RUN = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "id": maybe(st.integers(min_value=1, max_value=2**40)),
            "run_attempt": maybe(st.integers(min_value=1, max_value=5)),
            "name": JSON,
            "head_branch": JSON,
            "conclusion": maybe(st.sampled_from(["success", "failure", "skipped"])),
            "created_at": maybe(TIMES),
            "started_at": maybe(TIMES),
            "completed_at": maybe(TIMES),
            "updated_at": maybe(TIMES),
            "actor": ACCOUNT,
            "triggering_actor": ACCOUNT,
        },
    )
)
PAYLOAD_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "action": maybe(ACTIONS),
        "workflow_job": JOB_OR_RUN,
        "workflow_run": JOB_OR_RUN,
        "workflow": maybe(st.fixed_dictionaries({}, optional={"name": JSON})),
        "repository": maybe(st.fixed_dictionaries({}, optional={"full_name": JSON})),
        "organization": maybe(st.fixed_dictionaries({}, optional={"login": JSON})),
        "sender": ACCOUNT,
        "deployment": JSON,
    },
)


def check_robust(record: dict[str, Any]) -> None:
    assert isinstance(NORMALIZER.matches(record), bool)
    try:
        event = NORMALIZER.normalize(record)
    except NormalizationError:
        return
    assert isinstance(event, Event)
    assert orjson.loads(event.to_json())["event.source"] == "github_actions"


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=12), JSON))
def test_arbitrary_dicts_never_break_the_normalizer(record: dict[str, Any]) -> None:
    check_robust(record)


@settings(max_examples=500)
@given(PAYLOAD_LIKE)
def test_payload_like_dicts_never_break_the_normalizer(record: dict[str, Any]) -> None:
    check_robust(record)


@settings(max_examples=100)
@given(st.sampled_from(sorted(p.stem for p in FIXTURES.glob("*.json"))), st.data())
def test_fixtures_with_one_field_replaced_never_break_the_normalizer(
    name: str, data: st.DataObject
) -> None:
    record = payload(name)
    kind = "workflow_job" if "workflow_job" in record else "workflow_run"
    key = data.draw(st.sampled_from(sorted(record[kind])))
    record[kind][key] = data.draw(JSON)
    check_robust(record)
