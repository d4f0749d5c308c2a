"""Jenkins Audit Trail plugin records: File logger lines and Elasticsearch logger documents.

Two shapes, one source. A File logger line is `<date><separator><message>`, the date
`MMM d, yyyy h:mm:ss,SSS aa` in English without a zone (the JVM's zone is configuration:
`default_tz`); `parse_text` turns it into `{"date", "message", "line"}` so rules for
`product: jenkins` match `message` and the original line is kept. An Elasticsearch
logger document is exactly `{"@timestamp": "yyyy-MM-dd'T'HH:mm:ssZ", "message": ...}`.
Mapping choices, per message shape of the plugin:

- `event.action` vocabulary:
  - `request.<keyword>`: an audited HTTP request `<uri>[ (<extra>)] by <user>[ from <ip>]`;
    the keyword is the rightmost URI path segment that is one of the plugin's default
    pattern keywords (`configSubmit`, `doDelete`, `createItem`, ...), else the last
    segment (`cancelItem`, `scriptText` under a custom pattern).
  - `build.started` / `build.completed`: the run listener; `event.outcome` from the
    result: SUCCESS success; UNSTABLE, FAILURE, ABORTED failure (as a GitHub Actions
    conclusion `failure`/`cancelled`); NOT_BUILT or anything else unknown.
  - `credentials.used`: `'<user of the credentials>' (<class>) used credentials '<id>'`.
    The credentials id goes to `token.id` (the secret that was used), the job or node
    that used it to `resource.*`.
  - `script.executed`: `A groovy script was executed[ by user '<id>']. Origin: ...`.
  - `user.login` (success or failure) and `user.logout`: authentication events.
  - `message`: anything else, still an event with its raw record.
- `user.name`: the request's user; `NA`, the plugin's marker for an unauthenticated
  request, becomes `anonymous`, Jenkins' own name for that principal (as in "Started by
  user anonymous"), so rules can name it. For builds, `Started by user <name>` gives the
  user and `Started by remote host <ip>` gives `source.ip`. Jenkins logs no user type.
- `resource.kind` `job` is any item (job, pipeline, folder) under its full name
  (`folder/job`), read from `job/` URL segments, a `createItem` name, a queue task URL, a
  credentials run id (`folder/job#12`) or a completed build's display name (`folder »
  job #12`); `node` is an agent (`/computer/<name>/`, `/computer/createItem (<name>)`,
  credentials used by a node); `credential` is a credential the request changes
  (`.../credential/<id>/...`). Management pages under `/manage/` read as without it.
- `event.outcome` is set only where the message says it: builds, logins, credentials
  (a logged use is a use). A request is logged whatever its response, so it has none.
- `event.id` is a hash of the raw record (the plugin writes no id).
- Local dates that a DST change makes ambiguous are read as the first occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final
from urllib.parse import unquote

from detector.events import Event, Outcome
from detector.normalize.base import NormalizationError, Normalizer, content_id, trusted_event
from detector.timestamps import TimestampError, from_iso

_MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
)  # fmt: skip

#: `MMM d, yyyy h:mm:ss,SSS aa` as Java's SimpleDateFormat writes it in English.
_DATE: Final = re.compile(
    rf"(?P<month>{'|'.join(_MONTHS)}) (?P<day>\d{{1,2}}), (?P<year>\d{{4}}) "
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2}):(?P<second>\d{2}),(?P<millis>\d{3}) (?P<half>AM|PM)"
)

_TEXT_KEYS: Final = frozenset({"date", "message", "line"})
_ES_KEYS: Final = frozenset({"@timestamp", "message"})

#: The URI keywords of the plugin's default request pattern (`AuditTrailPlugin`).
_KNOWN_KEYWORDS: Final = frozenset(
    {
        "configSubmit",
        "doDelete",
        "postBuildResult",
        "enable",
        "disable",
        "cancelQueue",
        "stop",
        "toggleLogKeep",
        "doWipeOutWorkspace",
        "createItem",
        "createView",
        "toggleOffline",
        "cancelQuietDown",
        "quietDown",
        "restart",
        "exit",
        "safeExit",
    }
)

#: (event.category, event.type) of request keywords that change configuration.
_REQUEST_KINDS: Final = {
    "configSubmit": ("configuration", "change"),
    "enable": ("configuration", "change"),
    "disable": ("configuration", "change"),
    "toggleOffline": ("configuration", "change"),
    "toggleLogKeep": ("configuration", "change"),
    "createItem": ("configuration", "creation"),
    "createView": ("configuration", "creation"),
    "doDelete": ("configuration", "deletion"),
}

_BUILD_OUTCOMES: Final[dict[str, Outcome]] = {
    "SUCCESS": "success",
    "UNSTABLE": "failure",
    "FAILURE": "failure",
    "ABORTED": "failure",
}

# Messages may span lines (a script, a multi-line parameter): `.` must cross them.
_REQUEST: Final = re.compile(
    r"(?P<uri>/\S*?)(?: \((?P<extra>.*)\))? by (?P<user>.+?)(?: from (?P<ip>\S+))?", re.DOTALL
)
#: The end of a build-finish message, matched from its last ` on node ` (a node name has
#: none; parameters before it may), which keeps a hostile line from costing quadratic time.
_BUILD_COMPLETED_TAIL: Final = re.compile(
    r" on node (?P<node>.*) started at (?P<started>\S+) "
    r"completed in (?P<duration>-?\d+)ms completed: (?P<result>\S+)",
    re.DOTALL,
)
_DISPLAY_NAME: Final = re.compile(r"(?P<name>.+?) #\d+ ", re.DOTALL)
_BUILD_STARTED: Final = re.compile(r"(?P<url>\S+/) #\d+ (?P<causes>.*)", re.DOTALL)
_STARTED_BY_USER: Final = re.compile(r"Started by user (?P<user>.+?)(?=, |$)", re.MULTILINE)
_STARTED_BY_HOST: Final = re.compile(r"Started by remote host (?P<ip>[^\s,]+)")
_CREDENTIALS: Final = re.compile(
    r"'(?P<subject>.*?)' \((?P<subject_type>[^()]*)\) used credentials"
    r"(?: '(?P<id>.*)' \([^()]*\)\.)?",
    re.DOTALL,
)
_RUN_ID: Final = re.compile(r"(?P<job>.*?) ?#\d+", re.DOTALL)
#: Class names of nodes that use credentials: agents (`DumbSlave`, cloud `...Agent`s)
#: and the built-in node, whose name is empty.
_NODE_CLASS_ENDINGS: Final = ("Slave", "Agent", "jenkins.model.Jenkins")
_SCRIPT: Final = re.compile(
    r"A groovy script was executed(?: by user '(?P<user>[^'\n]*)')?\. Origin: "
)
_AUTH: Final = re.compile(
    r"(?P<what>Successful login|Failed login attempt|Logout) for user '(?P<user>.*)'"
)


@dataclass(frozen=True)
class _Parsed:
    """What one message says, in normalized terms."""

    action: str
    category: str | None = None
    type: str | None = None
    outcome: Outcome | None = None
    user: str | None = None
    ip: str | None = None
    kind: str | None = None
    name: str | None = None
    token: str | None = None


class JenkinsAuditNormalizer(Normalizer):
    """Audit Trail plugin records; rules for `jenkins`/`audit` see `message` (and `line`)."""

    name = "jenkins"
    product = "jenkins"
    service = "audit"

    def __init__(self, default_tz: tzinfo = UTC, *, separator: str = " ") -> None:
        """`default_tz`: the Jenkins JVM's zone; `separator`: the File logger's setting."""
        self.default_tz = default_tz
        self.separator = separator

    def parse_text(self, line: str) -> dict[str, Any] | None:
        """`{"date", "message", "line"}` for a File logger line, else None."""
        line = line.rstrip("\r\n")
        match = _DATE.match(line)
        if match is None:
            return None
        rest = line[match.end() :]
        # An empty separator is also seen in the wild: take it off only when present.
        message = rest[len(self.separator) :] if rest.startswith(self.separator) else rest
        return {"date": match.group(0), "message": message, "line": line}

    def matches(self, record: dict[str, Any]) -> bool:
        keys = record.keys()
        if keys == _ES_KEYS:
            return all(isinstance(record[key], str) for key in _ES_KEYS)
        if keys == _TEXT_KEYS and all(isinstance(record[key], str) for key in _TEXT_KEYS):
            return _DATE.fullmatch(record["date"]) is not None
        return False

    def normalize(self, record: dict[str, Any]) -> Event:
        message = record.get("message")
        if not isinstance(message, str):
            raise NormalizationError("message is missing or not a string")
        parsed = _parse_message(message)
        return trusted_event(
            timestamp=self._timestamp(record),
            event_id=content_id(record),
            event_source=self.name,
            event_action=parsed.action,
            event_category=[parsed.category] if parsed.category else None,
            event_type=[parsed.type] if parsed.type else None,
            event_outcome=parsed.outcome,
            user_name=parsed.user,
            source_ip=parsed.ip,
            resource_kind=parsed.kind,
            resource_name=parsed.name,
            token_id=parsed.token,
            raw=record,
        )

    def _timestamp(self, record: dict[str, Any]) -> datetime:
        if "@timestamp" in record:
            try:
                return from_iso(record["@timestamp"], self.default_tz)
            # OverflowError: an offset that moves the time past year 1 or 9999.
            except (TimestampError, OverflowError) as exc:
                raise NormalizationError(f"bad @timestamp: {exc}") from exc
        if "date" in record:
            return _local_date(record["date"], self.default_tz)
        raise NormalizationError("no @timestamp or date")


def _local_date(value: Any, zone: tzinfo) -> datetime:
    """A File logger date, read in `zone`, as UTC."""
    match = _DATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise NormalizationError(f"date is not 'MMM d, yyyy h:mm:ss,SSS aa': {value!r}")
    hour = int(match["hour"])
    if not 1 <= hour <= 12:
        raise NormalizationError(f"bad date: hour {hour} on a 12-hour clock: {value!r}")
    hour = hour % 12 + (12 if match["half"] == "PM" else 0)
    try:
        local = datetime(
            int(match["year"]),
            _MONTHS.index(match["month"]) + 1,
            int(match["day"]),
            hour,
            int(match["minute"]),
            int(match["second"]),
            int(match["millis"]) * 1000,
            tzinfo=zone,
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise NormalizationError(f"bad date: {exc}: {value!r}") from exc


def _parse_message(message: str) -> _Parsed:
    """The first message shape that fits, else a plain `message` event."""
    for parse in (_script, _auth, _credentials, _request, _build_completed, _build_started):
        parsed = parse(message)
        if parsed is not None:
            return parsed
    return _Parsed("message")


def _request(message: str) -> _Parsed | None:
    match = _REQUEST.fullmatch(message)
    if match is None:
        return None
    path: str = match["uri"].split("?", 1)[0]
    segments = [s for s in path.split("/") if s]
    keyword = next((s for s in reversed(segments) if s in _KNOWN_KEYWORDS), None)
    if keyword is None and segments:
        keyword = segments[-1]
    category, type_ = _REQUEST_KINDS.get(keyword or "", ("web", "access"))
    user = match["user"]
    kind, name = _request_target(segments, keyword, match["extra"])
    return _Parsed(
        action=f"request.{keyword}" if keyword else "request",
        category=category,
        type=type_,
        user="anonymous" if user == "NA" else user,
        ip=match["ip"],
        kind=kind,
        name=name,
    )


def _request_target(
    segments: list[str], keyword: str | None, extra: str | None
) -> tuple[str | None, str | None]:
    """The item, node or credential a request acts on (see the module docstring)."""
    if segments[:1] == ["manage"]:  # newer Jenkins serves the management pages under /manage
        segments = segments[1:]
    jobs = _job_names(segments)
    if segments[:1] == ["computer"]:
        if keyword == "createItem" and extra:  # /computer/createItem (name) creates an agent
            return "node", extra
        if len(segments) > 1 and segments[1] not in ("createItem", "doCreateItem"):
            return "node", unquote(segments[1])
    if "credential" in segments[:-1]:
        return "credential", unquote(segments[segments.index("credential") + 1])
    if keyword == "createItem" and extra:
        return "job", "/".join([*jobs, extra])
    if jobs:
        return "job", "/".join(jobs)
    queued = _job_names(extra.split("/")) if extra else []
    if queued:
        return "job", "/".join(queued)
    return None, None


def _job_names(segments: list[str]) -> list[str]:
    """`job/a/job/b` → `["a", "b"]` (URL-decoded)."""
    return [
        unquote(segments[i + 1])
        for i in range(len(segments) - 1)
        if segments[i] == "job" and segments[i + 1]
    ]


def _build_completed(message: str) -> _Parsed | None:
    at = message.rfind(" on node ")
    match = _BUILD_COMPLETED_TAIL.fullmatch(message, at) if at >= 0 else None
    if match is None:
        return None
    head = message[:at]
    display = _DISPLAY_NAME.match(head)
    user, ip = _build_causes(head)
    return _Parsed(
        action="build.completed",
        category="process",
        type="end",
        outcome=_BUILD_OUTCOMES.get(match["result"], "unknown"),
        user=user,
        ip=ip,
        kind="job",
        name=display["name"].replace(" » ", "/") if display else None,
    )


def _build_started(message: str) -> _Parsed | None:
    match = _BUILD_STARTED.fullmatch(message)
    if match is None:
        return None
    jobs = _job_names(match["url"].split("/"))
    user, ip = _build_causes(match["causes"])
    return _Parsed(
        action="build.started",
        category="process",
        type="start",
        user=user,
        ip=ip,
        kind="job" if jobs else None,
        name="/".join(jobs) if jobs else None,
    )


def _build_causes(causes: str) -> tuple[str | None, str | None]:
    """(user, ip) from `Started by user <name>` / `Started by remote host <ip>` causes."""
    by_user = _STARTED_BY_USER.search(causes)
    by_host = _STARTED_BY_HOST.search(causes)
    return (by_user["user"] if by_user else None, by_host["ip"] if by_host else None)


def _credentials(message: str) -> _Parsed | None:
    match = _CREDENTIALS.match(message)
    if match is None:
        return None
    subject = match["subject"]
    if match["subject_type"].endswith(_NODE_CLASS_ENDINGS):
        kind, name = "node", subject
    else:
        run = _RUN_ID.fullmatch(subject)
        kind, name = "job", run["job"] if run else subject
    return _Parsed(
        action="credentials.used",
        category="iam",
        type="info",
        outcome="success",
        kind=kind,
        name=name or None,
        token=match["id"] or None,
    )


def _script(message: str) -> _Parsed | None:
    match = _SCRIPT.match(message)
    if match is None:
        return None
    return _Parsed("script.executed", "process", "start", user=match["user"] or None)


def _auth(message: str) -> _Parsed | None:
    match = _AUTH.fullmatch(message)
    if match is None:
        return None
    what = match["what"]
    user = match["user"]
    # The plugin writes `<unknown>` when a failed login names no user.
    name = None if user == "<unknown>" or not user else user
    if what == "Logout":
        return _Parsed("user.logout", "authentication", "end", "success", user=name)
    outcome: Outcome = "success" if what == "Successful login" else "failure"
    return _Parsed("user.login", "authentication", "start", outcome, user=name)
