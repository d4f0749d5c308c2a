"""Image references read one way for every source, so registry and cluster events join."""

from __future__ import annotations

import pytest

from detector.normalize.images import split_reference


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("nginx", ("nginx", None)),
        ("nginx:1.27", ("nginx", None)),
        ("library/nginx:latest", ("library/nginx", None)),
        ("ghcr.io/acme/api:v1.2.3", ("acme/api", None)),
        ("registry.local:5000/team/app@sha256:ab", ("team/app", "sha256:ab")),
        ("localhost/app:1", ("app", None)),
        ("acme/api@sha256:cd", ("acme/api", "sha256:cd")),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/svc:prod", ("svc", None)),
    ],
)
def test_host_and_tag_are_dropped_digest_is_kept(
    reference: str, expected: tuple[str | None, str | None]
) -> None:
    assert split_reference(reference) == expected
