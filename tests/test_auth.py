"""Bearer tokens: mutating requests need one of ``L1_API_TOKENS``, reads stay open, and
no token ever reaches a log."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from l1.settings import Settings
from tests.harness import Harness, wait_for
from tests.processes import Deployment, OwnServers

TOKEN = "s3cret"
WRONG = "wrong-token-7d41"


def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    """An ``Authorization`` header."""
    return {"Authorization": f"{scheme} {token}"}


@pytest.fixture
async def l1(settings: Settings) -> AsyncIterator[Harness]:
    """A deployment that accepts one token."""
    guarded = msgspec.structs.replace(settings, api_tokens=(TOKEN,))
    async with Harness(guarded).running() as harness:
        yield harness


class Recorder(logging.Handler):
    """Keeps every record it sees, with everything attached to it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(f"{record.name} {self.format(record)} {record.__dict__!r}")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """Records at DEBUG from every logger that exists now, propagating or not."""
    handler = Recorder()
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


async def completed_run(l1: Harness) -> dict[str, Any]:
    """A completed run of ``dog`` over ``cat``, submitted with the token."""
    response = await l1.http.post(
        "/runs", json={"recipe": "dog", "inputs": ["cat"]}, headers=bearer(TOKEN)
    )
    assert response.status_code in (200, 202), response.text
    run = await l1.finished_run(response.json()["run_id"])
    assert run["status"] == "completed", run
    return run


async def test_submit_without_a_token_is_401_with_a_bearer_challenge(l1: Harness) -> None:
    response = await l1.http.post("/runs", json={"recipe": "dog", "inputs": ["cat"]})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in response.json()["detail"]
    for header in (bearer(TOKEN, "Basic"), {"Authorization": "Bearer"}, {"Authorization": TOKEN}):
        refused = await l1.http.post(
            "/runs", json={"recipe": "dog", "inputs": ["cat"]}, headers=header
        )
        assert refused.status_code == 401, (header, refused.text)
    assert (await l1.http.get("/runs")).json()["items"] == []


async def test_submit_with_another_token_is_403(l1: Harness) -> None:
    for token in (WRONG, TOKEN + "x", TOKEN[:-1], TOKEN.upper()):
        response = await l1.http.post(
            "/runs", json={"recipe": "dog", "inputs": ["cat"]}, headers=bearer(token)
        )
        assert response.status_code == 403, (token, response.text)
        assert response.json()["detail"]
    assert (await l1.http.get("/runs")).json()["items"] == []


async def test_submit_with_the_token_is_202(l1: Harness) -> None:
    body = {"recipe": "dog", "inputs": ["cat"]}
    response = await l1.http.post("/runs", json=body, headers=bearer(TOKEN))
    assert response.status_code == 202, response.text
    again = await l1.http.post("/runs", json=body, headers=bearer(TOKEN, "bearer"))
    assert again.status_code in (200, 202), again.text
    assert again.json()["run_id"] == response.json()["run_id"]


async def test_every_mutating_endpoint_needs_the_token(l1: Harness) -> None:
    run = await completed_run(l1)
    item = run["inputs"][0]["content_hash"]
    new_bytes = b"an upload that must not be stored"
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/cache", {"content": new_bytes}),
        ("POST", "/cache/gc", {}),
        ("POST", "/cache/import", {"params": {"path": "anything"}}),
        ("DELETE", f"/cache/{run['output_hash']}", {}),
        ("POST", f"/runs/{run['run_id']}/cancel", {}),
        ("POST", f"/runs/{run['run_id']}/retry", {}),
        ("POST", f"/runs/{run['run_id']}/publish", {}),
        ("DELETE", f"/runs/{run['run_id']}", {}),
        ("POST", "/recipes", {"content": b"name: x\n"}),
    ]
    for method, path, extra in requests:
        anonymous = await l1.http.request(method, path, **extra)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.headers["www-authenticate"] == "Bearer"
        wrong = await l1.http.request(method, path, headers=bearer(WRONG), **extra)
        assert wrong.status_code == 403, (method, path, wrong.text)
    # Nothing changed.
    assert (await l1.http.get(f"/runs/{run['run_id']}")).json()["status"] == "completed"
    for content_hash in (item, run["output_hash"]):
        assert (await l1.http.get(f"/cache/{content_hash}")).status_code == 200
    items = (await l1.http.get("/cache", params={"limit": 1000})).json()["items"]
    assert len(new_bytes) not in {i["size"] for i in items}


async def test_reads_stay_open(l1: Harness) -> None:
    run = await completed_run(l1)
    output = run["output_hash"]
    paths = [
        "/",
        "/health",
        "/health/live",
        "/assets",
        "/effects",
        "/recipes",
        "/runs",
        f"/runs/{run['run_id']}",
        "/cache",
        f"/cache/{output}",
        f"/cache/{output}/provenance",
        f"/cache/{output}/meta",
        "/docs/openapi.json",
    ]
    for path in paths:
        response = await l1.http.get(path)
        assert response.status_code == 200, (path, response.text)
    # Open too, though with no dead letter yet it fails otherwise (see test_fuzz.py).
    assert (await l1.http.get("/dead")).status_code not in (401, 403)
    assert (await l1.http.head(f"/cache/{output}")).status_code in (200, 405)


async def test_tokens_never_reach_the_log_records(l1: Harness, recorder: Recorder) -> None:
    body = {"recipe": "dog", "inputs": ["cat"]}
    await l1.http.post("/runs", json=body, headers=bearer(TOKEN))
    await l1.http.post("/runs", json=body, headers=bearer(WRONG))
    await l1.http.post("/runs", json={"recipe": 5}, headers=bearer(TOKEN))
    await l1.http.post("/runs", content=b"{not json", headers=bearer(TOKEN))
    await l1.http.delete(f"/cache/{'0' * 64}", headers=bearer(WRONG))
    await l1.http.get("/runs", headers=bearer(TOKEN))
    server_side = [t for t in recorder.texts if t.startswith(("uvicorn", "litestar", "l1"))]
    assert server_side, "the server logged nothing, so the check proves nothing"
    leaks = [text for text in recorder.texts if TOKEN in text or WRONG in text]
    assert leaks == []


async def test_tokens_never_reach_the_api_process_log(tmp_path: Path) -> None:
    servers = OwnServers(tmp_path / "servers")
    await servers.start()
    deployment = Deployment(tmp_path / "l1", servers, L1_API_TOKENS=TOKEN)
    try:
        api = await deployment.start_api()
        await _exercise(deployment.http)
        # Refused while NATS is down too: the error paths that log.
        await asyncio.to_thread(servers.nats.stop)
        await wait_for(lambda: _refused_for_nats(deployment.http), timeout=20)
        api.send(signal.SIGTERM)
        assert await api.exited(timeout=15) is not None
        log = api.log()
    finally:
        await deployment.close()
        await servers.stop()
    assert "Application startup complete" in log, "the API's output was not captured"
    assert TOKEN not in log
    assert WRONG not in log


async def _refused_for_nats(http: httpx.AsyncClient) -> bool:
    """POST /runs with the token once; True when it was refused for NATS being down."""
    body = {"recipe": "identity", "inputs": ["cat"]}
    response = await http.post("/runs", json=body, headers=bearer(TOKEN))
    return response.status_code == 503


async def _exercise(http: httpx.AsyncClient) -> None:
    """Requests with right, wrong and broken credentials, and failing bodies."""
    body = {"recipe": "dog", "inputs": ["cat"]}
    assert (await http.post("/runs", json=body, headers=bearer(TOKEN))).status_code == 202
    assert (await http.post("/runs", json=body, headers=bearer(WRONG))).status_code == 403
    assert (await http.post("/runs", json=body)).status_code == 401
    bad = await http.post("/runs", content=b"{not json", headers=bearer(TOKEN))
    assert bad.status_code == 400
    unknown = await http.post("/runs", json={"recipe": "nothing"}, headers=bearer(TOKEN))
    assert unknown.status_code == 400
