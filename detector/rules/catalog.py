"""The rule pack's catalog, rules/README.md, rendered from the rule files themselves.

A hand-written list of rules drifts from the pack; this one is generated (and CI checks
that the committed file equals a fresh rendering), so it always says what ships: every
rule, correlation and filter with its level, status, ATT&CK techniques and the number of
test events beside it, and which controls of the threat model (DESIGN.md, "Threat model
the rules serve") the pack watches and which it does not watch yet.

`CONTROLS` is the map from controls to rules. A rule watches a control when it fires as
the control is switched off or got around. A control lists the rules that watch it by file
stem (`fnmatch` patterns: `github_*_sso_*`) or by tag (`attack.t1562.008`, exact and
case-insensitive); a rule may watch several controls. A rule that no entry names is listed
under "Rules not mapped to a control": map it by adding its stem (or a tag it carries) to
the control it watches.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import yaml
from sigma.correlations import SigmaCorrelationRule
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule, SigmaRuleBase

from detector.rules.loader import RULE_TEST_SUFFIXES, correlation_section, load_rules

#: The command that regenerates the shipped pack's catalog (said in the file and by CI).
REGENERATE = "detector rules doc rules/ > rules/README.md"
LEVELS = ("critical", "high", "medium", "low", "informational")
_TECHNIQUE = re.compile(r"attack\.(t\d{4}(?:\.\d{3})?)", re.IGNORECASE)


@dataclass(frozen=True)
class Control:
    """One control of the threat model and the rules that watch it."""

    area: str
    text: str
    #: rule file stems, as fnmatch patterns
    rules: tuple[str, ...] = ()
    #: rule tags, matched exactly (case-insensitive)
    tags: tuple[str, ...] = ()
    #: shown instead of "none yet" where no rule can watch the control by itself
    note: str = ""

    def watched_by(self, stem: str, tags: Iterable[str]) -> bool:
        wanted = {tag.lower() for tag in self.tags}
        return any(fnmatchcase(stem, pattern) for pattern in self.rules) or any(
            tag.lower() in wanted for tag in tags
        )


#: The controls of DESIGN.md in its order, keyed by a stable id.
CONTROLS: dict[str, Control] = {
    "scm.sso-mfa": Control(
        "source control",
        "SSO and MFA enforced",
        rules=(
            "github_oidc_sso_disabled",
            "github_saml_sso_disabled",
            "github_saml_provider_settings_changed",
            "github_sso_recovery_code_used",
            "github_ip_allow_list_disabled",
            "github_ip_allow_list_entry_changed",
            "github_outside_collaborator_added",
            "github_ssh_certificate_authority_added",
            "sign_in_failed",
            "sign_in_failure_burst",
            "password_spray",
            "github_located_activity",
            "github_actor_new_country",
            "human_request_with_source_address",
            "identity_new_source_address",
        ),
        tags=("attack.t1556.006",),  # Modify Authentication Process: Multi-Factor Authentication
    ),
    "scm.token-expiry": Control(
        "source control",
        "no tokens without expiry",
        rules=(
            "cicd_access_token_created",
            "github_pat_expiration_limit_removed",
            "github_classic_pat_access_restriction_disabled",
            "github_fine_grained_pat_all_repositories",
            "github_pat_requests_auto_approved",
            "github_api_request_by_user_from_scripting_client",
            "github_sensitive_change_from_scripting_client",
            "github_write_deploy_key_added",
            "github_app_client_secret_generated",
            "github_oauth_app_access_approved",
            "github_oauth_app_restrictions_disabled",
            "gitlab_access_token_creation_failed",
            "gitlab_personal_access_token_created_for_another_user",
            "gitlab_resource_access_token_created",
            "gitlab_deploy_token_created",
            "gitlab_deploy_key_added",
            "gitlab_ssh_key_added_to_another_user",
            "gitlab_oauth_application_with_api_scope_created",
            "github_token_request",
            "github_token_new_source_address",
            "github_api_request_denied",
            "github_api_denied_burst",
            "repository_content_read",
            "repository_clone_burst",
            "stolen_token_*",
        ),
    ),
    "scm.protected-branches": Control(
        "source control",
        "protected branches",
        rules=(
            "cicd_protected_branch_removed",
            "github_branch_protection_deleted",
            "github_branch_protections_disabled_for_repository",
            "github_branch_protection_admin_enforcement_disabled",
            "github_branch_protection_bypass_list_changed",
            "github_branch_protection_policy_override",
            "github_branch_deletion_allowed_on_protected_branch",
            "github_force_push_*",
            "github_ruleset_*",
            "github_required_status_check*",
            "gitlab_protected_branch_removed",
            "gitlab_protected_branch_force_push_allowed",
            "gitlab_project_history_rewritten",
            "gitlab_security_policy_*",
            "protected_branch_removal",
            "protected_branch_created",
            "branch_protection_not_restored",
            "github_push",
            "repository_new_pusher",
            "tampered_pipeline_*",
        ),
    ),
    "scm.required-reviews": Control(
        "source control",
        "required reviews",
        rules=(
            "github_required_reviews_disabled",
            "github_required_approvals_set_to_zero",
            "github_code_owner_review_requirement_disabled",
            "github_stale_review_dismissal_disabled",
            "github_branch_protection_policy_override",
            "github_actions_pull_request_approval_policy_changed",
            "github_fork_pull_request_workflow_policy_changed",
            "gitlab_protected_branch_code_owner_approval_disabled",
            "gitlab_security_policy_*",
            "bot_run_rerun_by_user",
            "fork_branch_impersonates_bot",
            "tampered_pipeline_*",
        ),
    ),
    "scm.signed-commits": Control(
        "source control",
        "signed commits",
        rules=("github_signed_commits_requirement_disabled",),
    ),
    "scm.no-credentials-pushed": Control(
        "source control",
        "no credentials pushed",
        rules=(
            "cicd_secret_push_protection_bypassed",
            "github_push_protection_bypassed",
            "github_push_protection_bypass_list_opened",
            "github_secret_scanning_or_push_protection_disabled",
            "gitlab_secret_push_protection_*",
        ),
    ),
    "secrets.manager": Control(
        "secrets",
        "kept in a secrets manager",
        rules=(
            "cicd_ci_secret_or_variable_written",
            "github_actions_secret_*",
            "github_actions_variable_changed",
            "gitlab_ci_variable_*",
            "gitlab_ci_instance_variable_created_or_updated",
            "credentials_store_changed",
            "script_reads_credentials",
            "k8s_secret_read_by_human",
            "k8s_secret_read_in_system_namespace",
            "k8s_secrets_listed_cluster_wide",
            "secrets_read_burst",
            "secret_exfiltration_*",
            "stolen_token_*",
        ),
    ),
    "secrets.short-lived": Control(
        "secrets",
        "short-lived (OIDC federation instead of stored cloud keys)",
        rules=(
            "iam_oidc_provider_changed",
            "trust_policy_ci_oidc_*",
            "oidc_gitlab_token",
            "oidc_assume_role_failed",
            "k8s_serviceaccount_token_created_by_user",
            "k8s_legacy_serviceaccount_token_secret_created",
            "k8s_client_certificate_requested_by_user",
            "k8s_csr_approved_by_user",
            "k8s_system_identity_from_public_ip",
        ),
    ),
    "secrets.least-privilege": Control(
        "secrets",
        "one least-privilege identity per pipeline",
        rules=(
            "oidc_pull_request_subject*",
            "oidc_deploy_role_from_feature_branch",
            "trust_policy_ci_oidc_without_subject_restriction",
            "production_credentials_used_by_other_job",
            "github_default_workflow_permissions_changed",
            "github_app_installed_on_all_repositories",
            "github_app_permissions_updated",
            "github_app_ownership_transferred",
            "gitlab_ci_job_token_inbound_scope_disabled",
            "pull_request_target_from_fork",
            "workflow_run_trigger_from_fork",
            "robot_account_deleted_artifact",
            "k8s_cluster_admin_binding_by_ci_identity",
            "k8s_cluster_rbac_written_by_ci_identity",
            "k8s_binding_to_default_service_account",
            "k8s_permissions_enumerated_by_service_account",
            "kubernetes_request_forbidden",
            "kubernetes_forbidden_burst",
            "kubernetes_permission_probing",
            "deployment_hijack_*",
        ),
    ),
    "secrets.rotation": Control(
        "secrets",
        "rotated",
        rules=("ci_secret_not_rotated",),
    ),
    "runners.ephemeral": Control(
        "build runners",
        "ephemeral",
        rules=(
            "cicd_self_hosted_runner_registered",
            "github_self_hosted_runner_registered",
            "gitlab_ci_runner_registered",
            "gitlab_ci_runner_token_reset",
            "gitlab_runner_registration_token_enabled",
            "agent_created_or_reconfigured",
            "github_actions_self_hosted_job_started",
            "repository_new_self_hosted_runner",
            "rogue_runner_*",
        ),
    ),
    "runners.isolated": Control(
        "build runners",
        "isolated from production networks",
        rules=(
            "production_runner_non_default_branch",
            "self_hosted_runner_public_repository",
            "github_runner_group_access_widened",
            "github_runner_moved_into_group",
        ),
    ),
    "runners.rebuilt-from-code": Control(
        "build runners",
        "rebuilt from code",
        rules=(
            "global_configuration_changed",
            "global_security_configuration_changed",
            "plugin_uploaded",
            "production_job_modified",
        ),
    ),
    "runners.no-manual-logins": Control(
        "build runners",
        "no manual logins",
        rules=("script_console_execution", "script_runs_os_command", "script_reads_credentials"),
    ),
    "dependencies.pinned": Control("dependencies", "pinned with lock files"),
    "dependencies.approved-registries": Control(
        "dependencies",
        "fetched from approved registries",
        rules=("github_actions_allowed_actions_policy_changed",),
    ),
    "dependencies.scanned": Control(
        "dependencies",
        "scanned in the pipeline",
        rules=(
            "github_dependabot_alert_dismissed",
            "github_code_scanning_*",
            "github_code_security_removed_from_repository",
            "github_workflow_disabled",
            "security_scan_job_cancelled",
            "gitlab_security_policy_removed",
        ),
    ),
    "images.trusted-bases": Control("images", "built from trusted bases"),
    "images.scanned": Control(
        "images",
        "scanned",
        rules=(
            "vulnerability_scan_failed_or_stopped",
            "security_scan_job_cancelled",
            "image_pushed_by_non_ci_identity",
            "anonymous_write",
            "registry_manifest_pushed",
            "image_new_pusher",
            "image_swap_*",
        ),
    ),
    "images.signed": Control(
        "images",
        "signed",
        rules=("image_pushed_by_non_ci_identity", "anonymous_write", "image_swap_*"),
    ),
    "images.immutable-tags": Control(
        "images",
        "immutable release tags",
        rules=(
            "release_tag_pushed",
            "release_tag_deleted",
            "image_deleted_by_digest",
            "deploy_identity_pulled_mutable_tag",
            "k8s_image_by_tag_in_production",
        ),
    ),
    "images.admission-verified": Control(
        "images",
        "signature verified at admission",
        rules=(
            "k8s_admission_webhook_deleted",
            "k8s_admission_webhook_fail_open",
            "k8s_admission_webhook_written_by_non_system_identity",
            "k8s_kyverno_policy_*",
            "k8s_gatekeeper_constraint*",
        ),
    ),
    "images.approved-registries": Control(
        "images",
        "only approved registries in production",
        rules=(
            "k8s_image_from_unapproved_registry",
            "kubernetes_workload_image_set",
            "namespace_new_image",
        ),
    ),
    "deployment.rbac": Control(
        "deployment",
        "namespace-scoped RBAC per pipeline and environment",
        rules=(
            "k8s_cluster_admin_binding*",
            "k8s_binding_to_*",
            "k8s_cluster_rbac_written_by_ci_identity",
            "k8s_role_*",
            "k8s_builtin_rbac_modified",
            "k8s_impersonation_*",
            "k8s_anonymous_request_allowed",
            "k8s_forbidden_sensitive_request",
            "k8s_eks_aws_auth_configmap_changed",
            "k8s_serviceaccount_token_created_by_user",
            "k8s_csr_approved_by_user",
            "k8s_node_proxy_kubelet_api",
            "k8s_pod_created_in_system_namespace",
            "deployment_hijack_*",
            "kubernetes_permission_probing",
        ),
    ),
    "deployment.admission-policies": Control(
        "deployment",
        "admission policies (no privileged pods, no hostPath, approved images)",
        rules=(
            "k8s_admission_*",
            "k8s_kyverno_*",
            "k8s_gatekeeper_*",
            "k8s_namespace_pod_security_enforcement_weakened",
            "k8s_image_from_unapproved_registry",
            "kubernetes_admission_control_disabled*",
            "kubernetes_high_severity_request",
        ),
        tags=("attack.t1611",),  # Escape to Host: a privileged or hostPath pod was admitted
    ),
    "deployment.network-policy": Control(
        "deployment",
        "a NetworkPolicy in every namespace",
        rules=(
            "k8s_network_policy_deleted_in_protected_namespace",
            "k8s_service_exposed_outside_cluster",
            "k8s_ingress_without_tls",
            "k8s_pod_port_forward",
        ),
    ),
    "deployment.promotion": Control(
        "deployment",
        "promotion from staging",
        rules=(
            "oidc_deploy_role_from_feature_branch",
            "oidc_pull_request_subject_deploy_role",
            "workflow_dispatch_deploy_non_default_branch",
            "repository_dispatch_deploy",
            "github_deployment_protection_rules_bypassed",
            "github_environment_*",
            "gitlab_protected_environment_*",
            "production_build_remote_trigger",
            "production_job_modified",
            "job_enabled",
            "github_actions_deployment_job_completed",
            "repository_new_deployer",
            "tampered_pipeline_*",
        ),
    ),
    "deployment.gitops-only-writers": Control(
        "deployment",
        "GitOps controllers as the only writers",
        rules=(
            "gitlab_cluster_agent_token_created",
            "k8s_production_workload_changed_outside_gitops",
            "k8s_workload_written_in_system_namespace",
            "k8s_pod_created_in_system_namespace",
            "k8s_flux_reconciliation_suspended",
            "k8s_argocd_automated_sync_disabled",
            "k8s_pod_exec*",
            "k8s_pod_copy_via_exec",
            "k8s_pod_attach",
            "k8s_pod_ephemeral_debug_container",
            "production_namespace_new_writer",
            "deployment_hijack_*",
        ),
    ),
    "monitoring.audit-streaming": Control(
        "monitoring",
        "audit logs from every system streamed centrally",
        rules=(
            "github_workflow_logs_or_artifacts_deleted",
            "k8s_events_deleted",
            "github_high_severity_change",
        ),
        tags=("attack.t1562.008",),  # Impair Defenses: Disable or Modify Cloud Logs
    ),
    "monitoring.alerts": Control(
        "monitoring",
        "alerts on high-risk actions",
        note="the pack itself: every rule is an alert on a high-risk action",
    ),
    "monitoring.response": Control("monitoring", "rehearsed response (revoke, lock, pause)"),
}


@dataclass(frozen=True)
class Entry:
    """One rule, correlation or filter of the pack, as the catalog shows it."""

    source: str  # the directory under the rule directory (the rule's source)
    logsource: str
    title: str
    level: str
    status: str
    techniques: tuple[str, ...]
    #: test events (must fire, must stay silent), or why there are none
    tests: tuple[int, int] | str
    link: str  # the file, relative to the first rule directory
    stem: str
    tags: tuple[str, ...]

    @property
    def tests_text(self) -> str:
        return self.tests if isinstance(self.tests, str) else "{} / {}".format(*self.tests)

    @property
    def file_link(self) -> str:
        return f"[{Path(self.link).name}]({self.link})"

    @property
    def stem_link(self) -> str:
        return f"[{self.stem}]({self.link})"


def render_catalog(rule_dirs: Sequence[str | Path]) -> str:
    """rules/README.md for the rules under `rule_dirs` (links relative to the first)."""
    roots = [Path(d).resolve() for d in rule_dirs]
    loaded = load_rules(roots)
    items: list[SigmaRuleBase] = [
        *(rule.rule for rule in loaded.rules),
        *loaded.correlations,
        *(item.filter for item in loaded.filters),
    ]
    entries = sorted(
        (_entry(item, roots) for item in items),
        key=lambda e: (e.source, e.title.lower(), e.link),
    )
    errors = sorted(
        f"`{_relative(e.path.resolve(), roots[0])}`: {e.kind}: {e.reason}" for e in loaded.errors
    )
    lines = [
        "# Rule pack",
        "",
        f"Generated from the rule files by `{REGENERATE}`; do not edit it by hand.",
        "CI fails when this file and the rules disagree.",
        "",
        *_summary(entries),
        "",
        "## Rules",
        "",
        "Test events are those of `NAME.tests.yml` beside each rule: events that must make it "
        "fire / near misses that must not.",
        "",
        "| source | logsource | title | level | status | ATT&CK | tests | file |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {e.source} | {e.logsource} | {_cell(e.title)} | {e.level} | {e.status} "
            f"| {', '.join(e.techniques) or '-'} | {e.tests_text} | {e.file_link} |"
            for e in entries
        ),
        "",
        *_coverage(entries),
    ]
    if errors:
        lines += ["", "## Files that do not load", "", *(f"- {error}" for error in errors)]
    return "\n".join(lines) + "\n"


def _entry(item: SigmaRuleBase, roots: Sequence[Path]) -> Entry:
    path = item.source.path.resolve() if item.source is not None else roots[0]
    root = next((r for r in roots if path.is_relative_to(r)), roots[0])
    parts = path.relative_to(root).parts if path.is_relative_to(root) else (path.name,)
    tags = tuple(str(tag) for tag in item.tags)
    techniques = sorted({m.group(1).upper() for t in tags if (m := _TECHNIQUE.fullmatch(t))})
    return Entry(
        source=parts[0] if len(parts) > 1 else root.name,
        logsource=_logsource(item),
        title=item.title,
        level=item.level.name.lower() if item.level is not None else "-",
        status=item.status.name.lower() if item.status is not None else "-",
        techniques=tuple(techniques),
        tests=_test_counts(path),
        link=_relative(path, roots[0]),
        stem=path.stem,
        tags=tags,
    )


def _logsource(item: SigmaRuleBase) -> str:
    if isinstance(item, SigmaCorrelationRule):
        return f"correlation: {correlation_section(item).get('type', item.type.name)}"
    if isinstance(item, SigmaRule | SigmaFilter):
        source = item.logsource
        shown = "/".join(p for p in (source.product, source.service, source.category) if p)
        return f"filter: {shown}" if isinstance(item, SigmaFilter) else shown
    return "-"


def _test_counts(rule_file: Path) -> tuple[int, int] | str:
    """How many events the test file beside `rule_file` has under match and no_match."""
    for suffix in RULE_TEST_SUFFIXES:
        tests = rule_file.with_name(rule_file.stem + suffix)
        if tests.is_file():
            try:
                spec = yaml.safe_load(tests.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                return "unreadable"
            if not isinstance(spec, dict):
                return "unreadable"
            return len(spec.get("match") or []), len(spec.get("no_match") or [])
    return "none"


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _summary(entries: Sequence[Entry]) -> list[str]:
    """The totals and one row per source with its rules by level."""
    sources = sorted({e.source for e in entries})
    levels = Counter((e.source, e.level) for e in entries)
    tested = [e.tests for e in entries if not isinstance(e.tests, str)]
    fire, silent = sum(m for m, _ in tested), sum(n for _, n in tested)
    rows = [
        f"{len(entries)} rules from {len(sources)} sources, with {fire + silent} test events "
        f"({fire} that must fire, {silent} that must stay silent).",
        "",
        "| source | rules | " + " | ".join(LEVELS) + " |",
        "|---|" + "---:|" * (len(LEVELS) + 1),
    ]
    for source in sources:
        counts = [levels[source, level] for level in LEVELS]
        total = sum(1 for e in entries if e.source == source)
        rows.append(f"| {source} | {total} | " + " | ".join(map(str, counts)) + " |")
    totals = [sum(levels[s, level] for s in sources) for level in LEVELS]
    rows.append(f"| all | {len(entries)} | " + " | ".join(map(str, totals)) + " |")
    return rows


def _coverage(entries: Sequence[Entry]) -> list[str]:
    """Which rules watch each control, and the rules no control names."""
    watching = {
        control_id: [e for e in entries if control.watched_by(e.stem, e.tags)]
        for control_id, control in CONTROLS.items()
    }
    unwatched = [c for c, rules in watching.items() if not rules]
    rows = [
        "## Coverage of the threat model",
        "",
        'The controls are those of DESIGN.md, "Threat model the rules serve". A rule watches a '
        "control when it fires as the control is switched off or got around; the map is "
        "`CONTROLS` in `detector/rules/catalog.py`.",
        "",
        f"{len(CONTROLS) - len(unwatched)} of {len(CONTROLS)} controls are watched by a rule; "
        f"no rule yet for {', '.join(f'`{c}`' for c in unwatched) or 'none'}.",
        "",
        "| area | control | id | rules | watched by |",
        "|---|---|---|---:|---|",
    ]
    for control_id, control in CONTROLS.items():
        rules = sorted({e.stem_link for e in watching[control_id]})
        shown = ", ".join(rules) or control.note or "none yet"
        rows.append(
            f"| {control.area} | {_cell(control.text)} | `{control_id}` | {len(rules)} | {shown} |"
        )
    mapped = {id(e) for rules in watching.values() for e in rules}
    unmapped = [e for e in entries if id(e) not in mapped]
    rows += [
        "",
        "## Rules not mapped to a control",
        "",
        "New rules, and rules that watch something the threat model names no control for. Map "
        "a rule by adding its file stem (or a tag it carries) to the control it watches in "
        "`CONTROLS`.",
        "",
        *(f"- {e.source}: {_cell(e.title)} ({e.stem_link})" for e in unmapped),
    ]
    if not unmapped:
        rows.append("None: every rule watches a control.")
    return rows
