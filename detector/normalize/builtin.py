"""The built-in sources, in detection order, plus the declared ones."""

from __future__ import annotations

from collections.abc import Iterable

from detector.config import SourcesSettings, zone_of
from detector.normalize import SourceRegistry
from detector.normalize.cloudtrail import CloudTrailNormalizer
from detector.normalize.declared import DeclaredNormalizer, DeclaredSource
from detector.normalize.github import GitHubAuditNormalizer
from detector.normalize.github_actions import GitHubActionsNormalizer
from detector.normalize.gitlab import GitLabAuditNormalizer
from detector.normalize.jenkins import JenkinsAuditNormalizer
from detector.normalize.kubernetes import KubernetesAuditNormalizer
from detector.normalize.registry import RegistryNormalizer


def build_registry(
    settings: SourcesSettings, declared: Iterable[DeclaredSource] = ()
) -> SourceRegistry:
    """Every built-in normalizer, most specific signature first, and the declared sources."""
    zone = zone_of(settings.jenkins_timezone)
    detected = [
        KubernetesAuditNormalizer(),
        GitHubActionsNormalizer(),
        GitLabAuditNormalizer(),
        CloudTrailNormalizer(),
        RegistryNormalizer(),
        JenkinsAuditNormalizer(zone),
        GitHubAuditNormalizer(),
    ]
    declarations = [*settings.declared, *declared]
    return SourceRegistry(detected, [DeclaredNormalizer(d, zone) for d in declarations])
