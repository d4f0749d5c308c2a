"""How failed HTTP calls become `ActionError`s, the same way for every system.

An error answer is retryable for 429 and 5xx (and when the client gives no status), after
the wait the answer names; one that fails TLS verification is final; a server that does
not answer is worth another try. Messages never hold request headers, so never a token.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from email.utils import parsedate_to_datetime

import aiohttp

from detector.respond.actions.base import ActionError


def retryable_status(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait an answer asks for: `Retry-After` (seconds or an HTTP date), else when the
    rate limit resets (`x-ratelimit-reset` on GitHub, `RateLimit-Reset` on GitLab: Unix
    seconds). `headers` must look names up case-insensitively (every HTTP client's do)."""
    current = time.time() if now is None else now
    value = headers.get("Retry-After")
    if value is not None:
        value = value.strip()
        if value.isdigit():
            return float(value)
        with contextlib.suppress(TypeError, ValueError):
            return max(0.0, parsedate_to_datetime(value).timestamp() - current)
        return None
    for name in ("x-ratelimit-reset", "RateLimit-Reset"):
        reset = headers.get(name)
        if reset is not None and reset.strip().isdigit():
            return max(0.0, float(reset) - current)
    return None


def status_error(
    message: str, status: int | None, headers: Mapping[str, str] | None = None
) -> ActionError:
    """The error for an error answer, with the wait it names when it may be retried."""
    retryable = retryable_status(status)
    wait = retry_after_seconds(headers) if retryable and headers is not None else None
    return ActionError(message, status=status, retryable=retryable, retry_after=wait)


@contextlib.contextmanager
def aiohttp_failures(system: str, what: str) -> Iterator[None]:
    """An aiohttp call that got no answer: final for a certificate that fails verification,
    retryable for a network failure or a timeout."""
    try:
        yield
    except aiohttp.ClientSSLError:
        raise ActionError(
            f"{system}'s TLS certificate was not verified while trying to {what}"
        ) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ActionError(
            f"{system} did not answer while trying to {what}: {type(exc).__name__}",
            retryable=True,
        ) from None
