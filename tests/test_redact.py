"""Secrets never leave the engine: what it writes out is redacted, what it matches is not."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from detector.events import Event
from detector.redact import _TOKEN_PATTERNS, REDACTED, redact, redact_text
from tests.strategies import JSON_VALUES as json_values

GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5" * 4
GITHUB_FINE_GRAINED_TOKEN = "github_pat_" + "11ABCDEFG0" * 3
GITLAB_TOKEN = "glpat-" + "x" * 20
DOCKER_HUB_TOKEN = "dckr_pat_" + "Ab1-Cd2_Ef3" * 3
NPM_TOKEN = "npm_" + "A1b2C3d4E5f6" * 3
PYPI_TOKEN = "pypi-AgEIcHlwaS5vcmc" + "CJDk4ZTYtNWQ2Zi00" * 4
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm8vciJ9.c2lnbmF0dXJlLXZhbHVl"


def test_token_shaped_values_are_masked_inside_text() -> None:
    text = f"push with {GITHUB_TOKEN} and {GITLAB_TOKEN}, bearer {JWT}"
    assert redact_text(text) == f"push with {REDACTED} and {REDACTED}, bearer {REDACTED}"


def test_private_keys_are_masked() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"
    assert redact_text(f"key: {key}") == f"key: {REDACTED}"


def test_secret_keys_and_kubernetes_secret_data_are_masked() -> None:
    record = {
        "requestObject": {"kind": "Secret", "data": {"password": "c2VjcmV0"}, "type": "Opaque"},
        "responseElements": {
            "credentials": {"accessKeyId": "ASIAEXAMPLE", "sessionToken": "IQoJb3JpZ2lu"}
        },
        "token_id": 555,
        "hashed_token": "E8Fzcgs3TQXqhrKKC/qNR+2XZnaK3ykQBSAt1kPMiJs=",
        "token": "",
    }
    assert redact(record) == {
        "requestObject": {"kind": "Secret", "data": {"password": REDACTED}, "type": "Opaque"},
        "responseElements": {
            "credentials": {"accessKeyId": "ASIAEXAMPLE", "sessionToken": REDACTED}
        },
        "token_id": 555,
        "hashed_token": "E8Fzcgs3TQXqhrKKC/qNR+2XZnaK3ykQBSAt1kPMiJs=",
        "token": "",
    }


def test_events_are_written_redacted_but_matched_as_they_are() -> None:
    raw = {"message": f"leaked {GITHUB_TOKEN}"}
    event = Event(
        timestamp=datetime(2025, 1, 1, tzinfo=UTC), event_id="1", event_source="x", raw=raw
    )
    assert orjson.loads(event.to_json())["raw"] == {"message": f"leaked {REDACTED}"}
    assert event.to_dict()["raw"] == raw
    assert raw == {"message": f"leaked {GITHUB_TOKEN}"}  # the input is not changed


TOKENS = [
    GITHUB_TOKEN,
    GITHUB_FINE_GRAINED_TOKEN,
    GITLAB_TOKEN,
    DOCKER_HUB_TOKEN,
    NPM_TOKEN,
    PYPI_TOKEN,
    JWT,
]


def test_a_token_alone_in_text_is_masked() -> None:
    for token in TOKENS:
        assert redact_text(f"token {token}") == f"token {REDACTED}"


@given(value=json_values, secret=st.sampled_from(TOKENS))
def test_a_token_anywhere_never_survives(value: object, secret: str) -> None:
    wrapped = {"outer": [value, {"note": f"x{secret}y"}]}
    assert secret not in orjson.dumps(redact(wrapped)).decode()


#: pieces of every token family, and of the names that only look like them
TOKEN_PIECES = [
    *TOKENS,
    "xoxb-" + "1" * 10,
    "-----BEGIN RSA PRIVATE KEY-----",
    "gh",
    "ghp_",
    "github",
    "github_pat_",
    "gl",
    "glpat-",
    "gitlab",
    "eyJ",
    "dckr_",
    "dckr_pat_",
    "npm_",
    "pypi-",
    "pypi-AgE",
    "_",
    "-",
    ".",
    " ",
    "A1b2C3d4E5" * 4,
]


@given(st.lists(st.sampled_from(TOKEN_PIECES) | st.text(max_size=4), max_size=14))
def test_text_left_as_is_is_text_the_token_patterns_would_not_change(pieces: list[str]) -> None:
    """The quick test for token markers never passes over a token the expression finds."""
    text = "".join(pieces)
    assert redact_text(text) == _TOKEN_PATTERNS.sub(REDACTED, text)
