"""Jenkins Audit Trail normalizer: File logger lines, Elasticsearch documents, robustness."""

from __future__ import annotations

import copy
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.events import Event
from detector.normalize.base import NormalizationError, content_id
from detector.normalize.jenkins import JenkinsAuditNormalizer
from detector.redact import redact
from tests.strategies import JSON_VALUES as JSON

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sources" / "jenkins"
NORMALIZER = JenkinsAuditNormalizer()
BERLIN = ZoneInfo("Europe/Berlin")

SCRIPT_LINE = (
    "Mar 4, 2025 6:26:00,000 AM A groovy script was executed by user 'mallory'. "
    "Origin: Script Console Controller. "
)


def log_lines() -> list[str]:
    return (FIXTURES / "audit.log").read_text(encoding="utf-8").splitlines()


def es_documents() -> list[dict[str, Any]]:
    text = (FIXTURES / "elasticsearch.jsonl").read_text(encoding="utf-8")
    return [orjson.loads(line) for line in text.splitlines()]


def parsed(line: str, normalizer: JenkinsAuditNormalizer = NORMALIZER) -> dict[str, Any]:
    record = normalizer.parse_text(line)
    assert record is not None
    return record


def fields(
    record: dict[str, Any], normalizer: JenkinsAuditNormalizer = NORMALIZER
) -> dict[str, Any]:
    """The normalized JSON shape without `raw` and the (content hash) `event.id`."""
    shape = normalizer.normalize(record).to_dict()
    assert shape.pop("raw") == record
    assert shape.pop("event.id") == content_id(record)
    assert shape.pop("event.source") == "jenkins"
    return shape


def line_fields(message: str, date: str = "Mar 4, 2025 6:22:18,819 AM") -> dict[str, Any]:
    """The normalized shape of `message` logged at `date`, without the time."""
    shape = fields(parsed(f"{date} {message}"))
    del shape["@timestamp"]
    return shape


def test_logsource_is_jenkins_audit() -> None:
    assert (NORMALIZER.name, NORMALIZER.product, NORMALIZER.service) == (
        "jenkins",
        "jenkins",
        "audit",
    )


def test_parse_text_keeps_date_message_and_the_original_line() -> None:
    line = "Mar 4, 2025 6:22:18,819 AM /job/deploy-prod/configSubmit by alice from 10.1.2.3"
    assert NORMALIZER.parse_text(line + "\r\n") == {
        "date": "Mar 4, 2025 6:22:18,819 AM",
        "message": "/job/deploy-prod/configSubmit by alice from 10.1.2.3",
        "line": line,
    }


# Every fixture line that starts a record, in file order, with its normalized shape.
EXPECTED_LOG = [
    {
        "@timestamp": "2025-03-04T06:22:18.819000Z",
        "event.action": "request.configSubmit",
        "event.category": ["configuration"],
        "event.type": ["change"],
        "user.name": "alice",
        "source.ip": "10.1.2.3",
        "resource.kind": "job",
        "resource.name": "deploy-prod",
    },
    {
        "@timestamp": "2025-03-04T06:23:02.004000Z",
        "event.action": "request.createItem",
        "event.category": ["configuration"],
        "event.type": ["creation"],
        "user.name": "mallory",
        "source.ip": "203.0.113.9",
        "resource.kind": "job",
        "resource.name": "evil-job",
    },
    {
        "@timestamp": "2025-03-04T06:23:40.551000Z",
        "event.action": "build.started",
        "event.category": ["process"],
        "event.type": ["start"],
        "user.name": "alice",
        "resource.kind": "job",
        "resource.name": "deploy-prod",
    },
    {
        "@timestamp": "2025-03-04T06:25:11.120000Z",
        "event.action": "credentials.used",
        "event.category": ["iam"],
        "event.type": ["info"],
        "event.outcome": "success",
        "resource.kind": "job",
        "resource.name": "deploy-prod",
        "token.id": "aws-prod",
    },
    {
        "@timestamp": "2025-03-04T06:26:00.000000Z",
        "event.action": "script.executed",
        "event.category": ["process"],
        "event.type": ["start"],
        "user.name": "mallory",
    },
    {
        "@timestamp": "2025-03-04T06:27:13.402000Z",
        "event.action": "build.completed",
        "event.category": ["process"],
        "event.type": ["end"],
        "event.outcome": "success",
        "user.name": "alice",
        "resource.kind": "job",
        "resource.name": "deploy-prod",
    },
    {
        "@timestamp": "2025-03-14T13:05:00.118000Z",
        "event.action": "build.started",
        "event.category": ["process"],
        "event.type": ["start"],
        "resource.kind": "job",
        "resource.name": "qa/nightly-tests",
    },
    {
        "@timestamp": "2025-03-14T13:06:35.012000Z",
        "event.action": "build.completed",
        "event.category": ["process"],
        "event.type": ["end"],
        "event.outcome": "failure",
        "resource.kind": "job",
        "resource.name": "qa/nightly-tests",
    },
    {
        "@timestamp": "2025-03-14T23:58:07.330000Z",
        "event.action": "request.doDelete",
        "event.category": ["configuration"],
        "event.type": ["deletion"],
        "user.name": "anonymous",
        "source.ip": "198.51.100.23",
        "resource.kind": "job",
        "resource.name": "deploy-prod",
    },
    {
        "@timestamp": "2025-03-15T00:00:01.005000Z",
        "event.action": "request.cancelItem",
        "event.category": ["web"],
        "event.type": ["access"],
        "user.name": "alice",
        "source.ip": "10.1.2.3",
        "resource.kind": "job",
        "resource.name": "deploy-prod",
    },
    {
        "@timestamp": "2025-03-15T12:30:00.250000Z",
        "event.action": "request.toggleOffline",
        "event.category": ["configuration"],
        "event.type": ["change"],
        "user.name": "bob",
        "source.ip": "10.1.2.4",
        "resource.kind": "node",
        "resource.name": "agent-linux-02",
    },
    {
        "@timestamp": "2025-03-15T12:31:12.700000Z",
        "event.action": "user.login",
        "event.category": ["authentication"],
        "event.type": ["start"],
        "event.outcome": "failure",
        "user.name": "admin",
    },
    {
        "@timestamp": "2025-03-15T12:31:19.044000Z",
        "event.action": "user.login",
        "event.category": ["authentication"],
        "event.type": ["start"],
        "event.outcome": "success",
        "user.name": "bob",
    },
    {
        "@timestamp": "2025-03-15T12:40:55.901000Z",
        "event.action": "build.started",
        "event.category": ["process"],
        "event.type": ["start"],
        "source.ip": "203.0.113.9",
        "resource.kind": "job",
        "resource.name": "deploy-prod",
    },
]


def test_every_record_of_the_file_logger_fixture() -> None:
    records = [r for r in map(NORMALIZER.parse_text, log_lines()) if r is not None]
    assert [fields(r) for r in records] == EXPECTED_LOG
    for record in records:
        assert NORMALIZER.matches(record)
        assert orjson.loads(NORMALIZER.normalize(record).to_json())["raw"] == record


def test_continuation_lines_of_a_script_message_are_not_records() -> None:
    lines = log_lines()
    start = lines.index(SCRIPT_LINE)
    assert [NORMALIZER.parse_text(line) for line in lines[start + 1 : start + 3]] == [None, None]


def test_a_script_message_joined_with_its_continuation_lines_is_one_record() -> None:
    line = f'{SCRIPT_LINE}\nThe executed script: \nprintln "id".execute().text'
    record = parsed(line)
    assert record["line"] == line
    assert record["message"].endswith('println "id".execute().text')
    assert NORMALIZER.normalize(record).event_action == "script.executed"


def test_every_elasticsearch_document() -> None:
    documents = es_documents()
    assert [fields(d) for d in documents] == [
        {**EXPECTED_LOG[0], "@timestamp": "2025-03-04T06:22:18.000000Z"},
        # The JVM zone was +01:00: the offset in the document decides, not default_tz.
        {**EXPECTED_LOG[2], "@timestamp": "2025-03-04T06:23:40.000000Z"},
        {**EXPECTED_LOG[4], "@timestamp": "2025-03-04T06:26:00.000000Z"},
        {**EXPECTED_LOG[7], "@timestamp": "2025-03-14T13:06:35.000000Z"},
    ]
    assert all(NORMALIZER.matches(d) for d in documents)


def test_raw_keeps_the_message_for_jenkins_rules() -> None:
    record = parsed(log_lines()[0])
    raw = NORMALIZER.normalize(record).raw
    assert raw["message"] == "/job/deploy-prod/configSubmit by alice from 10.1.2.3"
    assert raw["line"] == log_lines()[0]


# ---- time


def test_default_zone_is_utc() -> None:
    assert JenkinsAuditNormalizer().default_tz is UTC


@pytest.mark.parametrize(
    ("date", "utc"),
    [
        # Winter: CET is UTC+1.
        ("Mar 4, 2025 6:22:18,819 AM", "2025-03-04T05:22:18.819000Z"),
        # Summer: CEST is UTC+2.
        ("Jul 14, 2025 4:05:09,001 PM", "2025-07-14T14:05:09.001000Z"),
        # Just after midnight local is the previous day in UTC.
        ("Jan 1, 2025 12:30:00,000 AM", "2024-12-31T23:30:00.000000Z"),
    ],
)
def test_configured_zone_shifts_the_local_date(date: str, utc: str) -> None:
    berlin = JenkinsAuditNormalizer(BERLIN)
    shape = berlin.normalize(parsed(f"{date} /job/x/configSubmit by a from 10.0.0.1", berlin))
    assert shape.to_dict()["@timestamp"] == utc


def test_configured_zone_reads_an_elasticsearch_time_without_offset() -> None:
    document = {"@timestamp": "2025-03-04T07:23:40", "message": "m"}
    event = JenkinsAuditNormalizer(BERLIN).normalize(document)
    assert event.to_dict()["@timestamp"] == "2025-03-04T06:23:40.000000Z"


@pytest.mark.parametrize(
    ("date", "utc"),
    [
        ("Mar 15, 2025 12:00:01,005 AM", "2025-03-15T00:00:01.005000Z"),
        ("Mar 15, 2025 12:00:01,005 PM", "2025-03-15T12:00:01.005000Z"),
        ("Mar 15, 2025 1:00:00,000 PM", "2025-03-15T13:00:00.000000Z"),
        ("Mar 15, 2025 11:59:59,999 PM", "2025-03-15T23:59:59.999000Z"),
        ("Mar 15, 2025 11:59:59,999 AM", "2025-03-15T11:59:59.999000Z"),
        ("Dec 31, 2024 9:07:03,040 AM", "2024-12-31T09:07:03.040000Z"),
    ],
)
def test_twelve_hour_clock(date: str, utc: str) -> None:
    assert NORMALIZER.normalize(parsed(f"{date} m")).to_dict()["@timestamp"] == utc


def test_every_english_month_name() -> None:
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    stamps = [
        NORMALIZER.normalize(parsed(f"{m} 2, 2025 3:04:05,006 AM m")).timestamp.month
        for m in months
    ]
    assert stamps == list(range(1, 13))


@pytest.mark.parametrize(
    "line",
    [
        "Mär 4, 2025 6:22:18,819 AM /job/x/configSubmit by a from 10.0.0.1",
        "mars 4, 2025 6:22:18,819 AM /job/x/configSubmit by a from 10.0.0.1",
        "Mar 4, 2025 6:22:18,819 nachm. /job/x/configSubmit by a from 10.0.0.1",
        # java.util.logging's default format (catalina.out) has no milliseconds.
        "Mar 04, 2025 6:22:18 AM org.apache.catalina.startup.Catalina start",
        "2025-03-04 06:22:18,819 INFO something else",
        "The executed script: ",
        "",
    ],
)
def test_lines_of_other_formats_are_not_jenkins_records(line: str) -> None:
    assert NORMALIZER.parse_text(line) is None


# ---- separator


def test_empty_separator_seen_in_the_wild() -> None:
    line = (
        "Dec 19, 2022 5:10:39,644 PMFreestyle_projects » Maven_Folder » app #12 Started by "
        "GitHub push by dev, Parameters:[] on node Jenkins started at 2022-12-19T17:10:08Z "
        "completed in 30917ms completed: SUCCESS"
    )
    record = parsed(line)
    assert record["date"] == "Dec 19, 2022 5:10:39,644 PM"
    assert fields(record) == {
        "@timestamp": "2022-12-19T17:10:39.644000Z",
        "event.action": "build.completed",
        "event.category": ["process"],
        "event.type": ["end"],
        "event.outcome": "success",
        "resource.kind": "job",
        "resource.name": "Freestyle_projects/Maven_Folder/app",
    }


def test_configured_separator_is_taken_off() -> None:
    normalizer = JenkinsAuditNormalizer(separator=" | ")
    record = parsed("Mar 4, 2025 6:22:18,819 AM | /job/x/disable by a from 10.0.0.1", normalizer)
    assert record["message"] == "/job/x/disable by a from 10.0.0.1"


# ---- message shapes


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            "/job/folder/job/my%20app/configSubmit by Alice Smith from 10.0.0.7",
            {
                "event.action": "request.configSubmit",
                "event.category": ["configuration"],
                "event.type": ["change"],
                "user.name": "Alice Smith",
                "source.ip": "10.0.0.7",
                "resource.kind": "job",
                "resource.name": "folder/my app",
            },
            id="display-name-and-encoded-folder-job",
        ),
        pytest.param(
            "/job/team/createItem (svc-deploy) by bob from 2001:db8::1",
            {
                "event.action": "request.createItem",
                "event.category": ["configuration"],
                "event.type": ["creation"],
                "user.name": "bob",
                "source.ip": "2001:db8::1",
                "resource.kind": "job",
                "resource.name": "team/svc-deploy",
            },
            id="create-item-in-a-folder",
        ),
        pytest.param(
            "/job/x/configSubmit by alice",
            {
                "event.action": "request.configSubmit",
                "event.category": ["configuration"],
                "event.type": ["change"],
                "user.name": "alice",
                "resource.kind": "job",
                "resource.name": "x",
            },
            id="older-plugin-without-ip",
        ),
        pytest.param(
            "/safeExit by NA from 198.51.100.23",
            {
                "event.action": "request.safeExit",
                "event.category": ["web"],
                "event.type": ["access"],
                "user.name": "anonymous",
                "source.ip": "198.51.100.23",
            },
            id="anonymous-controller-shutdown",
        ),
        pytest.param(
            "/queue/item/41/cancelQueue (job/deploy-prod/) by alice from 10.1.2.3",
            {
                "event.action": "request.cancelQueue",
                "event.category": ["web"],
                "event.type": ["access"],
                "user.name": "alice",
                "source.ip": "10.1.2.3",
                "resource.kind": "job",
                "resource.name": "deploy-prod",
            },
            id="queue-item-names-its-task",
        ),
        pytest.param(
            "/job/x/disable/extra by alice from 10.1.2.3",
            {
                "event.action": "request.disable",
                "event.category": ["configuration"],
                "event.type": ["change"],
                "user.name": "alice",
                "source.ip": "10.1.2.3",
                "resource.kind": "job",
                "resource.name": "x",
            },
            id="known-keyword-before-a-trailing-segment",
        ),
        pytest.param(
            "/scriptText by mallory from 203.0.113.9",
            {
                "event.action": "request.scriptText",
                "event.category": ["web"],
                "event.type": ["access"],
                "user.name": "mallory",
                "source.ip": "203.0.113.9",
            },
            id="custom-pattern-uri",
        ),
        pytest.param(
            "/ by alice from 10.1.2.3",
            {
                "event.action": "request",
                "event.category": ["web"],
                "event.type": ["access"],
                "user.name": "alice",
                "source.ip": "10.1.2.3",
            },
            id="root-uri",
        ),
        pytest.param(
            "job/x/ #3 Started by user alice, Rebuilds build #2, Parameters:[A: {1}]",
            {
                "event.action": "build.started",
                "event.category": ["process"],
                "event.type": ["start"],
                "user.name": "alice",
                "resource.kind": "job",
                "resource.name": "x",
            },
            id="build-with-several-causes",
        ),
        pytest.param(
            "job/x/ #3 Started by remote host 192.0.2.4 with note: nightly, Parameters:[]",
            {
                "event.action": "build.started",
                "event.category": ["process"],
                "event.type": ["start"],
                "source.ip": "192.0.2.4",
                "resource.kind": "job",
                "resource.name": "x",
            },
            id="build-by-remote-host-with-note",
        ),
        pytest.param(
            "x #9 Started by user alice on node built-in started at 2025-03-04T06:23:40Z "
            "completed in 10ms completed: ABORTED",
            {
                "event.action": "build.completed",
                "event.category": ["process"],
                "event.type": ["end"],
                "event.outcome": "failure",
                "user.name": "alice",
                "resource.kind": "job",
                "resource.name": "x",
            },
            id="older-build-finish-without-parameters",
        ),
        pytest.param(
            "x release-1.2 Started by timer, Parameters:[] on node built-in started at "
            "2025-03-04T06:23:40Z completed in 10ms completed: SUCCESS",
            {
                "event.action": "build.completed",
                "event.category": ["process"],
                "event.type": ["end"],
                "event.outcome": "success",
                "resource.kind": "job",
            },
            id="custom-build-display-name-has-no-job-name",
        ),
        pytest.param(
            "'agent-linux-02' (class hudson.slaves.DumbSlave) used credentials 'ssh-agents' "
            "(class com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey).",
            {
                "event.action": "credentials.used",
                "event.category": ["iam"],
                "event.type": ["info"],
                "event.outcome": "success",
                "resource.kind": "node",
                "resource.name": "agent-linux-02",
                "token.id": "ssh-agents",
            },
            id="credentials-used-by-a-node",
        ),
        pytest.param(
            "'Freestyle_projects/Maven_Folder/app' (class hudson.model.FreeStyleProject) used "
            "credentials 'git-creds' "
            "(class com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl).",
            {
                "event.action": "credentials.used",
                "event.category": ["iam"],
                "event.type": ["info"],
                "event.outcome": "success",
                "resource.kind": "job",
                "resource.name": "Freestyle_projects/Maven_Folder/app",
                "token.id": "git-creds",
            },
            id="credentials-used-by-an-item",
        ),
        pytest.param(
            "'x#4' (class org.jenkinsci.plugins.workflow.job.WorkflowRun) used credentials of "
            "type class com.example.Token (Note: Used fallback method for log as credentials "
            "type is not supported. See INFO log for more information).",
            {
                "event.action": "credentials.used",
                "event.category": ["iam"],
                "event.type": ["info"],
                "event.outcome": "success",
                "resource.kind": "job",
                "resource.name": "x",
            },
            id="credentials-without-an-id",
        ),
        pytest.param(
            "A groovy script was executed. Origin: CLI/GroovyCommand.",
            {
                "event.action": "script.executed",
                "event.category": ["process"],
                "event.type": ["start"],
            },
            id="script-without-a-user",
        ),
        pytest.param(
            "Logout for user 'bob'",
            {
                "event.action": "user.logout",
                "event.category": ["authentication"],
                "event.type": ["end"],
                "event.outcome": "success",
                "user.name": "bob",
            },
            id="logout",
        ),
        pytest.param(
            "Failed login attempt for user '<unknown>'",
            {
                "event.action": "user.login",
                "event.category": ["authentication"],
                "event.type": ["start"],
                "event.outcome": "failure",
            },
            id="failed-login-without-a-name",
        ),
        pytest.param(
            "Jenkins is fully up and running", {"event.action": "message"}, id="unknown-message"
        ),
        pytest.param("", {"event.action": "message"}, id="empty-message"),
    ],
)
def test_message_shapes(message: str, expected: dict[str, Any]) -> None:
    assert line_fields(message) == expected


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        ("SUCCESS", "success"),
        ("UNSTABLE", "failure"),
        ("FAILURE", "failure"),
        ("ABORTED", "failure"),
        ("NOT_BUILT", "unknown"),
        ("null", "unknown"),
    ],
)
def test_build_result_outcome(result: str, outcome: str) -> None:
    message = (
        "x #1 Started, Parameters:[] on node built-in started at 2025-03-04T06:23:40Z "
        f"completed in 5ms completed: {result}"
    )
    assert NORMALIZER.normalize(parsed(f"Mar 4, 2025 6:22:18,819 AM {message}")).event_outcome == (
        outcome
    )


@pytest.mark.parametrize(
    ("message", "action"),
    [
        # Each of these took quadratic time with less anchored patterns (seconds at 100 kB).
        ("x #1" + " on node a started at b" * 5000, "message"),
        ("'" + "' (" * 30000, "message"),
        ("'x' (c) used credentials '" + " #12 \n" * 20000, "credentials.used"),
        ("/x (" + ") by b" * 20000, "request.x"),
    ],
)
def test_long_hostile_messages_are_still_parsed(message: str, action: str) -> None:
    assert line_fields(message)["event.action"] == action


def test_requests_carry_no_outcome() -> None:
    record = parsed(log_lines()[0])
    assert NORMALIZER.normalize(record).event_outcome is None


# ---- detection


def test_matches_the_two_record_shapes() -> None:
    assert NORMALIZER.matches({"@timestamp": "2025-03-04T06:22:18+0000", "message": "x"})
    assert NORMALIZER.matches(
        {"date": "Mar 4, 2025 6:22:18,819 AM", "message": "x", "line": "whatever"}
    )


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(
            {"@timestamp": "2025-03-04T06:22:18+0000", "message": "x", "host": "h"},
            id="extra-key",
        ),
        pytest.param({"@timestamp": 1741069338000, "message": "x"}, id="epoch-timestamp"),
        pytest.param({"@timestamp": "2025-03-04T06:22:18Z", "message": ["x"]}, id="list-message"),
        pytest.param({"message": "x"}, id="message-only"),
        pytest.param(
            {"date": "2025-03-04", "message": "x", "line": "2025-03-04 x"}, id="text-bad-date"
        ),
        pytest.param(
            {"date": "Mar 4, 2025 6:22:18,819 AM", "message": None, "line": "l"},
            id="text-null-message",
        ),
        pytest.param(
            {
                "id": 1,
                "created_at": "2025-03-04T06:22:18.000Z",
                "author_name": "alice",
                "entity_path": "group/project",
                "event_name": "project_created",
                "message": "Created project",
            },
            id="gitlab-audit-event",
        ),
        pytest.param(
            {"action": "completed", "workflow_job": {"id": 1}, "repository": {}},
            id="github-actions-payload",
        ),
        pytest.param({}, id="empty"),
    ],
)
def test_matches_rejects_other_records(record: dict[str, Any]) -> None:
    assert NORMALIZER.matches(record) is False


# ---- errors


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"@timestamp": "2025-03-04T06:22:18+0000", "message": 5}, "message is missing"),
        ({"@timestamp": "yesterday", "message": "m"}, "bad @timestamp: not an ISO 8601 time"),
        ({"@timestamp": None, "message": "m"}, "bad @timestamp: expected an ISO 8601 string"),
        ({"message": "m"}, "no @timestamp or date"),
        ({"date": ["Mar 4, 2025"], "message": "m"}, "date is not 'MMM d, yyyy h:mm:ss,SSS aa'"),
        ({"date": "Feb 30, 2025 6:22:18,819 AM", "message": "m"}, "bad date: day is out of range"),
        ({"date": "Mar 4, 2025 13:22:18,819 PM", "message": "m"}, "hour 13 on a 12-hour clock"),
        ({"date": "Mar 4, 2025 0:22:18,819 AM", "message": "m"}, "hour 0 on a 12-hour clock"),
        ({"date": "Mar 4, 2025 6:61:18,819 AM", "message": "m"}, "bad date: minute must be"),
    ],
)
def test_normalization_errors_name_the_reason(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(NormalizationError) as caught:
        NORMALIZER.normalize(record)
    assert reason in str(caught.value)


def test_normalize_leaves_the_record_untouched() -> None:
    record = parsed(log_lines()[1])
    before = copy.deepcopy(record)
    assert NORMALIZER.normalize(record).raw is record
    assert record == before


# ---- robustness

MONTHS = st.sampled_from(["Jan", "Feb", "Mar", "Jun", "Sep", "Dec", "Mär"])
DATES = st.builds(
    "{} {}, {} {}:{:02d}:{:02d},{:03d} {}".format,
    MONTHS,
    st.integers(0, 99),
    st.integers(0, 9999).map("{:04d}".format),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 999),
    st.sampled_from(["AM", "PM"]),
)
MESSAGE_PARTS = st.sampled_from(
    [
        "/job/",
        "x",
        "/configSubmit",
        " (",
        ")",
        " by ",
        " from ",
        "NA",
        "job/a/",
        " #12 ",
        "Started by user ",
        "Started by remote host ",
        ", Parameters:[",
        "]",
        " on node ",
        " started at 2025-03-04T06:23:40Z",
        " completed in 12ms",
        " completed: ",
        "SUCCESS",
        "'",
        " (class hudson.slaves.DumbSlave)",
        " used credentials ",
        ".",
        "A groovy script was executed",
        " by user '",
        ". Origin: ",
        "Logout for user '",
        "Failed login attempt for user '",
        " » ",
        "\n",
        "%zz",
    ]
)
MESSAGES = st.lists(MESSAGE_PARTS | st.text(max_size=5), max_size=12).map("".join)
ZONES = st.sampled_from([UTC, BERLIN, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("America/Adak")])


def check_robust(normalizer: JenkinsAuditNormalizer, record: dict[str, Any]) -> None:
    assert isinstance(normalizer.matches(record), bool)
    try:
        event = normalizer.normalize(record)
    except NormalizationError:
        return
    assert isinstance(event, Event)
    assert orjson.loads(event.to_json())["event.source"] == "jenkins"


@settings(max_examples=500)
@given(st.text())
def test_arbitrary_text_lines_never_break_parse_text(line: str) -> None:
    record = NORMALIZER.parse_text(line)
    assert record is None or set(record) == {"date", "message", "line"}


@settings(max_examples=500)
@given(DATES, MESSAGES, ZONES)
def test_date_shaped_lines_parse_and_normalize_or_fail_with_a_reason(
    date: str, message: str, zone: Any
) -> None:
    normalizer = JenkinsAuditNormalizer(zone)
    line = f"{date} {message}"
    record = normalizer.parse_text(line)
    if date.startswith("Mär"):
        assert record is None
        return
    assert record is not None
    assert record["line"] == line.rstrip("\r\n")
    assert normalizer.matches(record)
    check_robust(normalizer, record)


@settings(max_examples=500)
@given(MESSAGES)
def test_every_message_of_a_valid_line_normalizes(message: str) -> None:
    record = parsed(f"Mar 4, 2025 6:22:18,819 AM {message}")
    event = NORMALIZER.normalize(record)
    assert event.event_action is not None
    assert orjson.loads(event.to_json())["raw"] == redact(record)


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=12), JSON))
def test_arbitrary_dicts_never_break_the_normalizer(record: dict[str, Any]) -> None:
    check_robust(NORMALIZER, record)


@settings(max_examples=300)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "@timestamp": st.sampled_from(["2025-03-04T06:22:18+0000", "0001-01-01T00:00:00"])
            | JSON,
            "date": DATES | JSON,
            "message": MESSAGES | JSON,
            "line": JSON,
        },
    ),
    ZONES,
)
def test_record_like_dicts_never_break_the_normalizer(record: dict[str, Any], zone: Any) -> None:
    check_robust(JenkinsAuditNormalizer(zone), record)


@pytest.mark.parametrize(
    ("uri", "kind", "name"),
    [
        ("/computer/createItem (build-agent-7)", "node", "build-agent-7"),
        ("/manage/computer/agent-3/configSubmit", "node", "agent-3"),
        (
            "/manage/credentials/store/system/domain/_/credential/aws-prod/doDelete",
            "credential",
            "aws-prod",
        ),
        ("/job/deploy-prod/configSubmit", "job", "deploy-prod"),
    ],
)
def test_requests_name_the_node_credential_or_job_they_change(
    uri: str, kind: str, name: str
) -> None:
    normalizer = JenkinsAuditNormalizer()
    record = normalizer.parse_text(f"Mar 4, 2025 6:23:02,004 AM {uri} by mallory from 203.0.113.9")
    assert record is not None
    event = normalizer.normalize(record)
    assert (event.resource_kind, event.resource_name) == (kind, name)
