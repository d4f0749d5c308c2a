"""What the responder core sees of credentials handed to `github.revoke_credentials`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from detector.respond.actions.base import SystemConnection
from detector.respond.actions.github import CredentialsParams, RevokeCredentials

SECRETS = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=20
)
KINDS = st.sampled_from(["ghp_", "github_pat_", "gho_", "ghu_", "ghr_", "", "xyz_"])


@given(parts=st.lists(st.tuples(KINDS, SECRETS), min_size=1, max_size=5))
def test_targets_name_the_token_type_and_never_the_token(parts: list[tuple[str, str]]) -> None:
    credentials = [kind + secret for kind, secret in parts]
    action = RevokeCredentials(SystemConnection(url="https://api.github.com"))
    params = CredentialsParams.model_validate({"credentials": credentials})

    targets = action.targets(params)

    assert len(targets) == len(credentials)
    for (kind, secret), target in zip(parts, targets, strict=True):
        assert secret not in target.name
        assert target.name.startswith(
            kind if kind in ("ghp_", "github_pat_", "gho_", "ghu_", "ghr_") else "unknown"
        )
        assert target.kind == "identity" and target.system == "github"
    assert all(c not in repr(params) + params.model_dump_json() for c in credentials)
