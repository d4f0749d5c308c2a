"""Container image references, read the same way for every source.

`image.name` is the repository path without the registry host (`acme/api`,
`library/nginx`): a registry's notifications name repositories that way, and the host a
client used varies (IP, DNS alias, mirror), so this is the form that joins a push in
the registry with a deployment in Kubernetes. Docker's rule decides whether the first
path component is a host: it contains `.` or `:`, or is `localhost`. No implicit
`library/` is added. `image.digest` is the `sha256:...` digest when the reference pins one.
"""

from __future__ import annotations


def split_reference(reference: str) -> tuple[str | None, str | None]:
    """`host/repo/name:tag@sha256:...` → (`repo/name`, `sha256:...`)."""
    name, _, digest = reference.strip().partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]  # the tag
    first, separator, rest = name.partition("/")
    if separator and ("." in first or ":" in first or first == "localhost"):
        name = rest
    return name or None, digest or None
