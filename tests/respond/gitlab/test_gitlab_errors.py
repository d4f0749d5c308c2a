"""How GitLab failures become `ActionError`s: which are retryable, and that no token leaks."""

from __future__ import annotations

from gitlab.exceptions import GitlabHttpError
from hypothesis import given
from hypothesis import strategies as st

from detector.respond.actions.gitlab import action_error

TOKENS = st.from_regex(r"glpat-[A-Za-z0-9_\-]{20,30}", fullmatch=True)


@given(status=st.integers(min_value=400, max_value=599), token=TOKENS, text=st.text(max_size=50))
def test_only_rate_limits_and_server_errors_are_retryable(
    status: int, token: str, text: str
) -> None:
    error = action_error(
        "gitlab.pause_runner",
        GitlabHttpError(error_message=f"{text} {token}", response_code=status),
    )
    assert error.status == status
    assert error.retryable == (status == 429 or status >= 500)
    assert token not in str(error)
    assert str(error).startswith(f"gitlab.pause_runner: {status} ")
