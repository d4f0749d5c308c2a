"""A deterministic, realistic audit mix of any size, for the benchmarks.

The records are the normalizable fixture records under tests/fixtures/sources used as
templates, so every generated line stays a record of its vendor's format. Routine
templates get fresh actors, repositories, namespaces and discriminating values; the
security-relevant ones are replayed as they are, with only a new id and time. Client
addresses repeat as they do in real logs (`Varier.address`). Event time increases from
one record to the next, ids never repeat, and the output is written as it is produced
(constant memory).

`--benign` writes routine records only (no security-relevant template, registry writes
by the CI identity, authenticated pulls), the traffic of an organization where nothing
happens that a rule is meant to catch; `--hours` spreads the records over that much
event time instead of the default ~216k records a day.

    python -m bench.generate --events 200000 --seed 1 --out /tmp/mix.jsonl
    python -m bench.generate --events 200000 --benign --hours 24 --out /tmp/benign.jsonl
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from detector.config import SourcesSettings
from detector.correlate.engine import microseconds, to_datetime
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.sources.files import read_paths

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "sources"
START = datetime(2025, 3, 3, tzinfo=UTC)
MEAN_GAP_US = 400_000  # ~216k events a day: a busy cluster plus an organization

#: share of each kind of record; "security" are the fixture records as they are
MIX = {
    "kubernetes": 0.70,
    "github": 0.20,
    "gitlab": 0.03,
    "registry": 0.03,
    "github_actions": 0.02,
    "cloudtrail": 0.01,
    "security": 0.01,
}

NAMESPACES = [
    "kube-system", "default", "monitoring", "ingress-nginx", "cert-manager",
    "logging", "argocd", "payments", "checkout", "search", "billing", "ci",
]  # fmt: skip
SERVICE_ACCOUNTS = [
    "default", "controller", "operator", "prometheus", "fluent-bit",
    "coredns", "leader-election", "external-dns", "cluster-autoscaler",
]  # fmt: skip
NODES = [f"system:node:worker-{n}" for n in range(1, 41)]
K8S_VERBS = ["get"] * 5 + ["list"] * 2 + ["watch"] * 3
K8S_RESOURCES = ["leases"] * 4 + ["configmaps"] * 2 + ["pods"] * 3 + ["endpoints"]
ORGS = ["octo-org", "octo-platform", "octo-data"]
REPOS = [
    f"{area}-{kind}"
    for area in ("payments", "checkout", "search", "auth", "billing", "gateway", "ledger")
    for kind in ("api", "service", "worker", "ui", "lib")
]
PEOPLE = [
    f"{name}-{team}"
    for name in ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan")
    for team in ("dev", "ops", "sre", "qa")
]
BOTS = ["octo-deployer[bot]", "dependabot[bot]", "renovate[bot]"]
#: Share of a person's Git and API activity outside the few repositories they work on.
ELSEWHERE = 0.03
GIT_ACTIONS = ["git.clone"] * 5 + ["git.fetch"] * 8 + ["git.push"] * 2
#: Share of a person's requests from somewhere other than their usual addresses (travel,
#: a phone), and chance that a workload's next request comes from a new address (its pod
#: was rescheduled).
AWAY = 0.05
MOVED = 0.002
#: Changes when the same seed gives other records: the name of a cached mix has it.
MIX_VERSION = 3


@dataclass(frozen=True)
class Template:
    """A fixture record that normalizes, with what it is."""

    source: str
    action: str | None
    data: bytes  # the record as JSON: decoded afresh for each copy

    def copy(self) -> dict[str, Any]:
        record: dict[str, Any] = orjson.loads(self.data)
        return record


def is_routine(event: Event) -> bool:
    """Everyday traffic whose templates the generator varies freely."""
    action, user = event.event_action, event.user_name or ""
    if event.event_source == "kubernetes":
        verb = event.raw.get("verb") if isinstance(event.raw, dict) else None
        return verb in ("get", "list", "watch") and user.startswith(
            ("system:serviceaccount:", "system:node:")
        )
    if event.event_source == "github":
        return action in (
            "git.clone", "git.fetch", "git.push",
            "workflows.prepared_workflow_job", "workflows.completed_workflow_run",
        )  # fmt: skip
    if event.event_source == "gitlab":
        return action == "repository_git_operation"
    if event.event_source == "registry":
        return action in ("pull", "push")
    if event.event_source == "github_actions":
        return (action or "").startswith("workflow_job.")
    if event.event_source == "cloudtrail":
        return (
            action in ("AssumeRoleWithWebIdentity", "GetAuthorizationToken")
            and event.event_outcome == "success"
        )
    return False


def load_templates(fixtures: Path = FIXTURES) -> dict[str, list[Template]]:
    """Routine templates by source, and the rest under "security" (Jenkins aside)."""
    stage = NormalizeStage(build_registry(SourcesSettings()))
    result: dict[str, list[Template]] = {kind: [] for kind in MIX}
    for raw in read_paths([str(fixtures)]):
        for item in stage.process(raw):
            if not isinstance(item, Event) or not isinstance(item.raw, dict):
                continue  # dead letters, and text records that have no JSON form
            if item.event_source not in VARY:
                continue
            kind = item.event_source if is_routine(item) else "security"
            result[kind].append(
                Template(item.event_source, item.event_action, orjson.dumps(item.raw))
            )
    missing = [kind for kind, templates in result.items() if not templates]
    if missing:
        raise ValueError(f"no fixture templates for {', '.join(missing)}")
    return result


def precision(original: Any) -> int:
    """The unit, in microseconds, of a template's time value."""
    if isinstance(original, int):
        return 1000 if original > 10**11 else 1_000_000
    fraction = original.split(".", 1)[1] if isinstance(original, str) and "." in original else ""
    digits = len(fraction) - len(fraction.lstrip("0123456789"))
    return int(10 ** (6 - min(digits, 6)))


def like(original: Any, micros: int) -> Any:
    """`micros` (since the epoch) written the way the template wrote its time."""
    if isinstance(original, int) and not isinstance(original, bool):
        return micros // precision(original)
    if not isinstance(original, str):
        return original
    ts = to_datetime(micros)
    head = ts.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = original.split(".", 1)[1] if "." in original else ""
    digits = len(fraction) - len(fraction.lstrip("0123456789"))
    if not digits:
        return f"{head}Z"
    micro = f"{ts.microsecond:06d}"
    return f"{head}.{micro[:digits] if digits <= 6 else micro + '0' * (digits - 6)}Z"


class Varier:
    """Fresh ids and times for every record, fresh values for routine ones."""

    def __init__(
        self, rng: random.Random, until: datetime | None = None, benign: bool = False
    ) -> None:
        self.rng = rng
        self.seq = 0
        #: routine records made as a well-run organization makes them (see `generate`)
        self.benign = benign
        #: event time of the record being made, in microseconds since the epoch
        self.now = microseconds(START)
        #: where the last record's time should land, if the records span a set time
        self.until = None if until is None else microseconds(until)
        #: the usual client addresses of each person and workload
        self.addresses: dict[str, list[str]] = {}

    def tick(self, remaining: int) -> None:
        """Advance to the next record's time; `remaining` records are still to come.

        With `until`, the mean gap is what is left over what remains, so the rounding of
        times to their templates' precision does not push the last record past it.
        """
        mean: float = MEAN_GAP_US
        if self.until is not None:
            mean = max((self.until - self.now) / remaining - 1000, 1)
        self.now += 1000 + int(self.rng.expovariate(1 / mean))

    def retime(self, record: dict[str, Any], fields: tuple[str, ...]) -> None:
        """Set the time fields to now, rounded up to their precision (time never goes back)."""
        for name in fields:
            if record.get(name) is not None:
                unit = precision(record[name])
                self.now = -(-self.now // unit) * unit
                record[name] = like(record[name], self.now)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def repository(self, person: str | None) -> str:
        """`org/repo`: a person works on the same three repositories most of the time, as
        developers do; bots and the occasional visit go anywhere."""
        rng = self.rng
        if person is None or person not in PEOPLE or rng.random() < ELSEWHERE:
            return f"{rng.choice(ORGS)}/{rng.choice(REPOS)}"
        index = PEOPLE.index(person)
        org = ORGS[index % len(ORGS)]
        return f"{org}/{REPOS[(index * 3 + rng.randrange(3)) % len(REPOS)]}"

    def token(self, size: int = 16) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(size)).decode().rstrip("=")

    def digest(self) -> str:
        return "sha256:" + self.rng.randbytes(32).hex()

    def ip(self) -> str:
        return (
            f"10.{self.rng.randrange(256)}.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"
        )

    def address(self, holder: str, *, person: bool) -> str:
        """The client address of a request by `holder`. A workload (a pod, a node, a bot)
        has one, which changes when it moves; a person has one to three (office, home,
        VPN) and is sometimes elsewhere. Audit logs repeat addresses this way, and a rule
        or memo that depends on it would be misjudged by an address per request."""
        rng = self.rng
        usual = self.addresses.get(holder)
        if usual is None:
            count = rng.choice((1, 1, 2, 3)) if person else 1
            usual = self.addresses[holder] = [self.ip() for _ in range(count)]
        if person and rng.random() < AWAY:
            return self.ip()
        if not person and rng.random() < MOVED:
            usual[0] = self.ip()
        return rng.choice(usual)

    def kubernetes(self, record: dict[str, Any], routine: bool) -> None:
        record["auditID"] = self.uuid()
        if "requestReceivedTimestamp" in record:
            received = self.now - self.rng.randrange(200, 40_000)
            record["requestReceivedTimestamp"] = like(record["requestReceivedTimestamp"], received)
        self.retime(record, ("stageTimestamp",))
        if not routine:
            return
        rng = self.rng
        verb, resource = rng.choice(K8S_VERBS), rng.choice(K8S_RESOURCES)
        namespace = rng.choice(NAMESPACES)
        if rng.random() < 0.3:
            user = rng.choice(NODES)
            groups = ["system:nodes", "system:authenticated"]
            agent = "kubelet/v1.30.2 (linux/amd64) kubernetes/3968350"
            reason = ""  # the Node authorizer gives none
        else:
            sa_namespace = rng.choice(NAMESPACES)
            account = rng.choice(SERVICE_ACCOUNTS)
            user = f"system:serviceaccount:{sa_namespace}:{account}"
            agent = f"{account}/v0.0.0 (linux/amd64) kubernetes/$Format"
            groups = [
                "system:serviceaccounts",
                f"system:serviceaccounts:{sa_namespace}",
                "system:authenticated",
            ]
            reason = (
                f'RBAC: allowed by RoleBinding "{account}/{namespace}" of Role "{account}" '
                f'to ServiceAccount "{account}/{sa_namespace}"'
            )
        record["verb"] = verb
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, user))
        record["user"] = {"username": user, "uid": uid, "groups": groups, "extra": {}}
        record["sourceIPs"] = [self.address(user, person=False)]
        record["userAgent"] = agent
        group = "coordination.k8s.io" if resource == "leases" else ""
        prefix = "/apis/coordination.k8s.io/v1" if group else "/api/v1"
        ref: dict[str, Any] = {"resource": resource, "namespace": namespace}
        uri = f"{prefix}/namespaces/{namespace}/{resource}"
        if verb == "get":
            ref["name"] = f"{resource.rstrip('s')}-{rng.randrange(500)}"
            uri += f"/{ref['name']}"
        elif verb == "watch":
            uri += "?watch=true"
        ref |= {"apiGroup": group, "apiVersion": "v1"} if group else {"apiVersion": "v1"}
        record["objectRef"] = ref
        record["requestURI"] = uri
        # the authorizer's annotations, as on every request it allowed (the template's
        # reason names the template's own account)
        record["annotations"] = {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": reason,
        }

    def github(self, record: dict[str, Any], routine: bool) -> None:
        if "_document_id" in record:
            record["_document_id"] = self.token()
        self.retime(record, ("@timestamp", "created_at"))
        if not routine:
            return
        rng = self.rng
        if record.get("action", "").startswith("git."):
            record["action"] = rng.choice(GIT_ACTIONS)
        actor = None
        if "actor" in record:
            actor = rng.choice(BOTS) if rng.random() < 0.2 else rng.choice(PEOPLE)
            record["actor"] = actor
            record["actor_id"] = 1_000_000 + (BOTS + PEOPLE).index(actor)
            record["actor_is_bot"] = actor in BOTS
        repo = self.repository(actor)
        org = repo.split("/", 1)[0]
        if "actor_ip" in record:
            holder = actor or "anonymous"
            record["actor_ip"] = self.address(holder, person=holder in PEOPLE)
        record["org"] = org
        record["org_id"] = 9000 + ORGS.index(org)
        for key in ("repo", "repository"):
            if key in record:
                record[key] = repo
        if "repo_id" in record:
            record["repo_id"] = 70_000 + REPOS.index(repo.split("/", 1)[1])
        if "job_workflow_ref" in record:
            record["job_workflow_ref"] = f"{repo}/.github/workflows/deploy.yml@refs/heads/main"
        if "workflow_run_id" in record:
            self.seq += 1
            record["workflow_run_id"] = 13_000_000_000 + self.seq

    def gitlab(self, record: dict[str, Any], routine: bool) -> None:
        self.seq += 1
        if isinstance(record.get("id"), int):
            record["id"] = 100_000 + self.seq
        elif isinstance(record.get("id"), str):
            record["id"] = str(100_000 + self.seq) if record["id"].isdigit() else self.uuid()
        self.retime(record, ("created_at", "time"))
        if not routine:
            return
        author = self.rng.choice(PEOPLE)
        path = self.repository(author)
        values = {
            "author_name": author,
            "entity_path": path,
            "target_details": path.split("/", 1)[1],
            "ip_address": self.address(author, person=True),
        }
        for target in (record, record.get("details")):
            if isinstance(target, dict):
                target.update({k: v for k, v in values.items() if k in target})

    def registry(self, record: dict[str, Any], routine: bool) -> None:
        rng = self.rng
        if "id" in record:
            record["id"] = self.uuid()
        self.retime(record, ("timestamp", "occur_at"))
        name, tag = rng.choice(REPOS), f"v1.{rng.randrange(40)}.{rng.randrange(10)}"
        target, data = record.get("target"), record.get("event_data")
        if isinstance(target, dict):  # Distribution notification
            target["digest"] = self.digest()
            if routine:
                target["repository"], target["tag"] = name, tag
                actor = record.get("actor")
                if self.benign:  # only the pipeline writes, and nobody pulls anonymously
                    writer = "ci-deployer" if record.get("action") == "push" else None
                    actor = record["actor"] = actor if isinstance(actor, dict) else {}
                    actor["name"] = writer or rng.choice(["ci-deployer", *PEOPLE])
                elif isinstance(actor, dict) and actor:
                    actor["name"] = rng.choice(["ci-deployer", *PEOPLE])
        elif isinstance(data, dict):  # Harbor webhook: its id is a hash of the content
            namespace = rng.choice(ORGS)
            for resource in data.get("resources", []):
                resource["digest"] = self.digest()
                if routine:
                    resource["tag"] = tag
                    resource["resource_url"] = f"harbor.example.com/{namespace}/{name}:{tag}"
            if routine and self.benign and record.get("type") == "PUSH_ARTIFACT":
                record["operator"] = f"robot${namespace}+ci"  # only the pipeline writes
            repository = data.get("repository")
            if routine and isinstance(repository, dict):
                repository |= {
                    "name": name,
                    "namespace": namespace,
                    "repo_full_name": f"{namespace}/{name}",
                }

    def github_actions(self, record: dict[str, Any], routine: bool) -> None:
        self.seq += 1
        for kind in ("workflow_job", "workflow_run"):
            body = record.get(kind)
            if isinstance(body, dict):
                body["id"] = 30_000_000_000 + self.seq
                if "run_id" in body:
                    body["run_id"] = 11_000_000_000 + self.seq
                self.retime(body, ("created_at", "started_at", "completed_at", "updated_at"))
                self.retime(body, ("run_started_at",))
        if routine and isinstance(record.get("sender"), dict):
            record["sender"]["login"] = self.rng.choice(PEOPLE)

    def cloudtrail(self, record: dict[str, Any], routine: bool) -> None:
        record["eventID"] = self.uuid()
        if "requestID" in record:
            record["requestID"] = self.uuid()
        self.retime(record, ("eventTime",))
        if routine:  # CI jobs on hosted runners: an address from a large pool each time
            record["sourceIPAddress"] = self.ip()


Vary = Callable[[Varier, dict[str, Any], bool], None]
VARY: dict[str, Vary] = {
    "kubernetes": Varier.kubernetes,
    "github": Varier.github,
    "gitlab": Varier.gitlab,
    "registry": Varier.registry,
    "github_actions": Varier.github_actions,
    "cloudtrail": Varier.cloudtrail,
}


def generate(
    out: Path,
    events: int,
    seed: int,
    fixtures: Path = FIXTURES,
    *,
    benign: bool = False,
    span: timedelta | None = None,
) -> Counter[str]:
    """Write `events` JSON lines to `out`; returns how many of each kind were written.

    `benign` leaves the security-relevant templates out and makes the routine records the
    way the threat model's controls say (DESIGN.md): images are written to the registry by
    the CI identity only, and every pull is authenticated. `span` is the event time the
    records are spread over from START (default: about MEAN_GAP_US apart).
    """
    templates = load_templates(fixtures)
    rng = random.Random(seed)
    varier = Varier(rng, None if span is None else START + span, benign)
    mix = {kind: share for kind, share in MIX.items() if not (benign and kind == "security")}
    kinds, weights = list(mix), list(mix.values())
    counts: Counter[str] = Counter()
    with out.open("wb", buffering=1 << 20) as handle:
        for made in range(events):
            kind = rng.choices(kinds, weights)[0]
            template = rng.choice(templates[kind])
            record = template.copy()
            varier.tick(events - made)
            VARY[template.source](varier, record, kind != "security")
            handle.write(orjson.dumps(record) + b"\n")
            counts[kind] += 1
    return counts


def mix_arguments(description: str, events: int, *, workers: bool = False) -> argparse.Namespace:
    """The options every replay benchmark takes: how many events, the seed, the file (and,
    `workers`, how many worker processes the parallel runs use)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--events", type=int, default=events)
    if workers:
        parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, help="generated file to reuse or create")
    parser.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    return parser.parse_args()


def mix_file(args: argparse.Namespace) -> Path:
    """The generated mix of `mix_arguments`: reused when the file exists, else written."""
    data: Path = (
        args.data
        or Path(tempfile.gettempdir()) / f"bench-mix-v{MIX_VERSION}-{args.events}-{args.seed}.jsonl"
    )
    if data.exists():
        print(f"reusing {data}", file=sys.stderr)
        return data
    started = time.perf_counter()
    mix = generate(data, args.events, args.seed)
    print(
        f"generated {data} in {time.perf_counter() - started:.1f} s: {dict(mix)}", file=sys.stderr
    )
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--benign", action="store_true", help="routine records only")
    parser.add_argument("--hours", type=float, help="spread the records over this event time")
    args = parser.parse_args()
    span = timedelta(hours=args.hours) if args.hours else None
    counts = generate(args.out, args.events, args.seed, benign=args.benign, span=span)
    print(", ".join(f"{kind} {number}" for kind, number in counts.most_common()))


if __name__ == "__main__":
    main()
