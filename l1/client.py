"""A small HTTP client for L1's API, used by the command line and the benchmarks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["L1Client", "L1ClientError"]


class L1ClientError(Exception):
    """The server refused a request or could not be reached; the message says which."""


class L1Client:
    """Calls one L1 server."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> L1Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        """``GET /``."""
        return self._call("GET", "/")

    def submit(
        self,
        recipe: str,
        inputs: list[str] | dict[str, str],
        *,
        output_name: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /runs``; returns the run."""
        body: dict[str, Any] = {"recipe": recipe, "inputs": inputs}
        if output_name:
            body["output_name"] = output_name
        if params:
            body["params"] = dict(params)
        return self._call("POST", "/runs", json=body)

    def run(self, run_id: str, *, wait: float = 0) -> dict[str, Any]:
        """``GET /runs/{run_id}``, waiting up to ``wait`` seconds for it to finish."""
        params = {"wait": wait} if wait else None
        return self._call("GET", f"/runs/{_segment(run_id)}", params=params, timeout=wait + 30)

    def register_recipe(self, document: bytes) -> dict[str, Any]:
        """``POST /recipes`` with a YAML or JSON recipe."""
        return self._call(
            "POST", "/recipes", content=document, headers={"Content-Type": "application/yaml"}
        )

    def recipes(self) -> Iterator[dict[str, Any]]:
        """Every registered recipe, most recent first."""
        return self._pages("/recipes", {"limit": 100})

    def effects(self) -> list[dict[str, Any]]:
        """``GET /effects``: every effect, its parameters as JSON Schema."""
        return list(self._pages("/effects", {}))

    def effect(self, name: str) -> dict[str, Any]:
        """``GET /effects/{name}``."""
        return self._call("GET", f"/effects/{_segment(name)}")

    def assets(self) -> list[dict[str, Any]]:
        """``GET /assets``: the named assets."""
        return list(self._pages("/assets", {}))

    def cancel(self, run_id: str) -> dict[str, Any]:
        """``POST /runs/{run_id}/cancel``."""
        return self._call("POST", f"/runs/{_segment(run_id)}/cancel")

    def retry(self, run_id: str) -> dict[str, Any]:
        """``POST /runs/{run_id}/retry``."""
        return self._call("POST", f"/runs/{_segment(run_id)}/retry")

    def workers(self) -> list[dict[str, Any]]:
        """``GET /workers``: every live worker."""
        return list(self._pages("/workers", {}))

    def queues(self) -> list[dict[str, Any]]:
        """``GET /queues``: each durable consumer's queue."""
        return list(self._pages("/queues", {}))

    def dead(self, *, limit: int = 100) -> Iterator[dict[str, Any]]:
        """Every dead render request, newest first, following the pages."""
        return self._pages("/dead", {"limit": limit})

    def discard(self, run_id: str, *, cancel: bool = False) -> dict[str, Any]:
        """``DELETE /runs/{run_id}``; returns what was deleted and what was kept."""
        params = {"cancel": "true"} if cancel else None
        return self._call("DELETE", f"/runs/{_segment(run_id)}", params=params)

    def publish(self, run_id: str) -> dict[str, Any]:
        """``POST /runs/{run_id}/publish``."""
        return self._call("POST", f"/runs/{_segment(run_id)}/publish")

    def delete_item(self, content_hash: str) -> None:
        """``DELETE /cache/{hash}``."""
        self._call("DELETE", f"/cache/{_segment(content_hash)}")

    def content_hash(self, item: str) -> str:
        """The full hash of ``item`` (a hash, a unique prefix of one, or an asset name),
        from ``HEAD /cache/{item}``: its ETag."""
        if len(item) == 64:
            return item
        response = self._request("HEAD", f"/cache/{_segment(item)}")
        if response.is_success and "etag" in response.headers:
            return response.headers["etag"].strip('"')
        # A HEAD answer has no body to say what is wrong: ask for one that does.
        return str(self._call("GET", f"/cache/{_segment(item)}/meta")["content_hash"])

    def meta(self, content_hash: str) -> dict[str, Any]:
        """``GET /cache/{hash}/meta``."""
        return self._call("GET", f"/cache/{_segment(content_hash)}/meta")

    def gc(self, *, dry_run: bool) -> dict[str, Any]:
        """``POST /cache/gc``."""
        return self._call("POST", "/cache/gc", params={"dry_run": str(dry_run).lower()})

    def runs(self, *, limit: int = 100, status: str | None = None) -> Iterator[dict[str, Any]]:
        """Every run, newest first, following the pages."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._pages("/runs", params)

    def cache(self, *, limit: int = 100) -> Iterator[dict[str, Any]]:
        """Every cached item, most recent first, following the pages."""
        return self._pages("/cache", {"limit": limit})

    def upload(self, path: Path) -> dict[str, Any]:
        """``POST /cache`` with the file's bytes, streamed."""
        with path.open("rb") as body:
            return self._call(
                "POST", "/cache", content=body, headers={"Content-Type": "application/octet-stream"}
            )

    def download(self, content_hash: str, destination: Path) -> int:
        """Save an item to ``destination``; returns the number of bytes written."""
        try:
            with self._http.stream("GET", f"/cache/{_segment(content_hash)}") as response:
                _raise_for(response, read=True)
                written = 0
                with destination.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        written += len(chunk)
                return written
        except httpx.TransportError as error:
            raise self._unreachable(error) from None

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            page = self._call("GET", path, params=params)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params = {**params, "cursor": page["next_cursor"]}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        _raise_for(response)
        return response.json() if response.content else None

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None

    def _unreachable(self, error: Exception) -> L1ClientError:
        return L1ClientError(f"cannot reach L1 at {self.base_url} ({error}); is `l1 up` running?")


def _raise_for(response: httpx.Response, *, read: bool = False) -> None:
    if response.is_success:
        return
    if read:
        response.read()
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text or response.reason_phrase
    raise L1ClientError(f"{response.status_code}: {detail}")


def _segment(value: str) -> str:
    """``value`` as one path segment: a slash or dot-dot in it stays inside it."""
    return quote(value, safe="").replace(".", "%2E")
