"""POSTing to an alert endpoint, and what its answer means for delivery.

2xx is delivered. 408, 429, 5xx, redirects (never followed: a webhook that moved is a
configuration to fix, not a place to send alerts unasked) and network errors are worth
another attempt, after the endpoint's `Retry-After` when it sends one. Any other 4xx
rejects this detection for good. Error text is scrubbed of the sink's secrets: some
endpoints echo the request.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import aiohttp

from detector import __version__
from detector.sinks.base import DELIVERED, Outcome, Rejected, Retry, Sink, is_retryable

#: How much of an error response goes into the reason (characters).
_SNIPPET = 200


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class HttpSink(Sink):
    """A sink that POSTs one JSON body per detection to one URL."""

    def __init__(self, name: str, url: str, secrets: Sequence[str] = ()) -> None:
        super().__init__(name, secrets)
        self._url = url
        self._session: aiohttp.ClientSession | None = None

    async def post(self, body: bytes, headers: Mapping[str, str] | None = None) -> Outcome:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": f"detector/{__version__}"})
        try:
            async with self._session.post(
                self._url,
                data=body,
                headers={"Content-Type": "application/json", **(headers or {})},
                allow_redirects=False,
            ) as response:
                if 200 <= response.status < 300:
                    return DELIVERED
                # Scrubbed whole, then clipped: a clip first could leave part of a secret.
                text = self.scrub((await response.read()).decode("utf-8", "replace"))
                detail = " ".join(text.split())
                reason = f"HTTP {response.status}" + (f": {detail}" if detail else "")
                reason = reason[:_SNIPPET]
                if is_retryable(response.status):
                    after = retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
                    return Retry(reason, after)
                return Rejected(reason)
        except (aiohttp.ClientError, OSError) as exc:
            return Retry(self.scrub(f"{type(exc).__name__}: {exc}"))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
