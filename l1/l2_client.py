"""Every call L1 makes to L2, the publishing layer.

``GET {L2}/objects/{hash}`` says whether an item is published (200 with JSON: yes; 404:
no; anything else, a time-out or no answer: unknown). Answers are cached briefly; a
"published" answer longer, since publishing is permanent. ``POST
{L2}/registry/record-run`` asks L2 to publish a run; L2 calls back into L1 before it
answers, so that call has a longer time-out.
"""

from __future__ import annotations

import enum
import time
from typing import Any

import httpx

from l1.errors import Conflict, DependencyDown, UpstreamError

__all__ = ["L2Client", "Published"]

# Publishing is permanent, so a "yes" can be trusted far longer than a "no".
PUBLISHED_TTL = 24 * 3600.0


class Published(enum.StrEnum):
    """What L2 says of an item."""

    YES = "published"
    NO = "unpublished"
    UNKNOWN = "unknown"


class L2Client:
    """Asks L2 about items and asks it to publish runs. Without a URL, L1 is stand-alone:
    nothing is published."""

    def __init__(
        self,
        base_url: str | None,
        *,
        timeout: float = 5.0,
        publish_timeout: float = 30.0,
        cache_seconds: float = 10.0,
    ) -> None:
        self.base_url = base_url
        self._publish_timeout = publish_timeout
        self._cache_seconds = cache_seconds
        self._answers: dict[str, tuple[Published, float]] = {}
        self._http = httpx.AsyncClient(timeout=timeout) if base_url else None

    @property
    def standalone(self) -> bool:
        """True when no L2 is configured."""
        return self._http is None

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            await self._http.aclose()

    async def published(self, content_hash: str) -> Published:
        """Whether L2 has published ``content_hash``; UNKNOWN when L2 cannot say."""
        if self._http is None:
            return Published.NO
        cached = self._answers.get(content_hash)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        answer = await self._ask(content_hash)
        if answer is not Published.UNKNOWN:
            ttl = PUBLISHED_TTL if answer is Published.YES else self._cache_seconds
            self._answers[content_hash] = (answer, time.monotonic() + ttl)
        return answer

    async def _ask(self, content_hash: str) -> Published:
        assert self._http is not None
        try:
            response = await self._http.get(f"{self.base_url}/objects/{content_hash}")
        except httpx.HTTPError:
            return Published.UNKNOWN
        if response.status_code == 404:
            return Published.NO
        if response.status_code == 200:
            try:
                response.json()
            except ValueError:
                return Published.UNKNOWN
            return Published.YES
        return Published.UNKNOWN

    async def publish_run(self, run_id: str, *, l1_server: str) -> dict[str, Any]:
        """Ask L2 to publish a run; L2 reads it back from ``l1_server`` before answering."""
        if self._http is None:
            raise Conflict("no L2 is configured (L1_L2_URL): this server is stand-alone")
        try:
            response = await self._http.post(
                f"{self.base_url}/registry/record-run",
                json={"run_id": run_id, "l1_server": l1_server},
                timeout=self._publish_timeout,
            )
        except httpx.HTTPError as error:
            raise DependencyDown(f"L2 at {self.base_url} did not answer: {error!r}") from None
        if response.status_code not in (200, 201):
            detail = f"{response.status_code} {response.text[:500]}"
            raise UpstreamError(f"L2 refused to publish the run: {detail}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {"response": body}

    def forget(self, content_hash: str) -> None:
        """Drop the cached answer for an item."""
        self._answers.pop(content_hash, None)
