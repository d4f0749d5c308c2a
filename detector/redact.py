"""Redaction of secrets in what the engine emits.

Audit records can carry credentials: a Kubernetes `Secret` written at `Request` level
holds its data, CloudTrail returns session credentials, a leaked token shows up in a
message. Matching sees records as they are; everything written out (normalized events,
logs) goes through `redact` first. A redacted value becomes `[REDACTED]`: not even a
hash is kept, since a hash of a short secret gives it away to a dictionary.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

#: Values that are secrets whatever key they sit under.
_TOKEN_PATTERNS = re.compile(
    "|".join(
        [
            r"gh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
            r"github_pat_[A-Za-z0-9_]{22,}",  # GitHub fine-grained PATs
            r"gl(?:pat|dt|rt|cbt|ptt|ft|imt|oas|soat|ffct|agent)-[A-Za-z0-9_\-]{20,}",  # GitLab
            r"xox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack
            r"dckr_(?:pat|oat)_[A-Za-z0-9_\-]{10,}",  # Docker Hub personal and organization
            r"npm_[A-Za-z0-9]{36,}",  # npm access tokens
            r"pypi-AgE[A-Za-z0-9_\-]{50,}",  # PyPI API tokens (macaroons)
            r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWTs
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
        ]
    )
)
#: Keys whose values are secrets (compared lower-cased, without `_` and `-`). AWS secret
#: keys have no recognisable shape (40 characters of base64, like many hashes), so they
#: are caught by their key name.
_SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "clientsecret",
        "secretaccesskey",
        "sessiontoken",
        "privatekey",
        "accesstoken",
        "refreshtoken",
        "apikey",
        "authorization",
        "webidentitytoken",
        "token",
    }
)


REDACTED = "[REDACTED]"
#: Values left as they are under a secret key: there is nothing to hide.
_EMPTY_VALUES: tuple[Any, ...] = (None, "", {}, [])
#: Keys of a Kubernetes `Secret` object that hold its values.
_SECRET_DATA = ("data", "stringData")


def redact_text(value: str) -> str:
    """`value` with every token-like substring masked.

    Text without the substrings every match of `_TOKEN_PATTERNS` contains is returned as
    is, for a fraction of the expression's scan: each family's prefix, and the `_` or `-`
    it holds (so the source names `github` and `gitlab` alone, in every GitHub or GitLab
    detection's message, scan nothing).
    """
    if (
        (
            "_" in value
            and ("gh" in value or "github_pat_" in value or "dckr_" in value or "npm_" in value)
        )
        or (
            "-" in value
            and ("gl" in value or "xox" in value or "pypi-" in value or "-----BEGIN" in value)
        )
        or "eyJ" in value
    ):
        return _TOKEN_PATTERNS.sub(REDACTED, value)
    return value


def redact(value: Any) -> Any:
    """A copy of a JSON value with secrets masked; the input is not changed."""
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if kind is dict:
        return _redact_object(value)
    if kind is list:
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, dict):
        return _redact_object(value)
    return value


def _redact_object(value: dict[Any, Any]) -> dict[Any, Any]:
    # Strings and scalars, most of a record's values, are handled here without a call.
    secret_object = value.get("kind") == "Secret"
    result: dict[Any, Any] = {}
    for key, item in value.items():
        secret = _is_secret_key(key) or (secret_object and key in _SECRET_DATA)
        if secret and item not in _EMPTY_VALUES:
            result[key] = _mask_any(item)
            continue
        kind = type(item)
        if kind is str:
            result[key] = redact_text(item)
        elif kind is int or kind is bool or kind is float or item is None:
            result[key] = item
        else:
            result[key] = redact(item)
    return result


@lru_cache(maxsize=8192, typed=True)
def _is_secret_key(key: Any) -> bool:
    """Whether values under `key` are secrets (records repeat their keys: cached)."""
    return str(key).lower().replace("_", "").replace("-", "") in _SECRET_KEYS


def _mask_any(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _mask_any(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_any(item) for item in value]
    return REDACTED
