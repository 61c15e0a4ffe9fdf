"""The dashboard's pages, the offline API docs, workers' heartbeats and the queues,
through a real deployment."""

from __future__ import annotations

import asyncio
import re

import httpx
import msgspec
import pytest

from l1.settings import Settings
from tests.harness import Harness, submit, upload, wait_for


async def test_a_browser_asking_for_the_root_is_sent_to_the_dashboard(l1: Harness) -> None:
    browser = await l1.http.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*"})
    assert browser.status_code in (302, 303, 307)
    assert browser.headers["location"] == "/ui"
    client = await l1.http.get("/")
    assert client.status_code == 200
    assert client.json()["name"] == "l1"
    assert (await l1.http.get("/", headers={"Accept": "application/json"})).json()["name"] == "l1"


async def test_every_page_is_html_and_shows_what_it_is_about(l1: Harness) -> None:
    run = await submit(l1.http, "sepia", ["cat"])
    finished = await l1.finished_run(run["run_id"])
    assert finished["status"] == "completed"
    pages = {
        "/ui": run["run_id"],
        f"/ui/runs/{run['run_id'][:10]}": finished["output_hash"],
        "/ui/cache": finished["output_hash"],
        "/ui/effects": "effect-sepia",
        "/ui/workers": "queues-table",
        "/ui/dead": "Dead letters",
    }
    for path, expected in pages.items():
        response = await l1.http.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers["content-type"].startswith("text/html"), path
        assert expected in response.text, path
        assert "/static/ui/app.css" in response.text


async def test_the_run_page_draws_each_step_and_shows_the_output(l1: Harness) -> None:
    run = await submit(l1.http, "blur", ["cat"], params={"radius": 3})
    finished = await l1.finished_run(run["run_id"])
    page = (await l1.http.get(f"/ui/runs/{run['run_id']}")).text
    assert '<svg class="graph"' in page
    for step in finished["steps"]:
        assert f'data-node="{step["node_id"]}"' in page
    assert f'src="/cache/{finished["output_hash"]}"' in page
    assert 'id="output-image"' in page
    assert "provenance" in page


async def test_thumbnails_are_made_once_and_kept(l1: Harness) -> None:
    hashes = (await l1.http.get("/assets")).json()["items"]
    for asset in hashes:
        response = await l1.http.get(f"/ui/thumbs/{asset['content_hash']}")
        assert response.status_code == 200, asset
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content[:2] == b"\xff\xd8"
        kept = l1.settings.cache_dir / "thumbs" / asset["content_hash"][:2]
        assert (kept / f"{asset['content_hash']}.jpg").read_bytes() == response.content


async def test_a_thumbnail_goes_with_its_item(l1: Harness) -> None:
    item = await upload(l1.http, _png())
    assert (await l1.http.get(f"/ui/thumbs/{item}")).status_code == 200
    kept = l1.settings.cache_dir / "thumbs" / item[:2] / f"{item}.jpg"
    assert kept.exists()
    assert (await l1.http.delete(f"/cache/{item}")).status_code == 204

    async def gone() -> bool:
        return not kept.exists()

    await wait_for(gone)
    assert (await l1.http.get(f"/ui/thumbs/{item}")).status_code == 404


async def test_an_unknown_run_is_a_page_saying_so(l1: Harness) -> None:
    response = await l1.http.get("/ui/runs/" + "ab" * 32)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="error"' in response.text and "no run" in response.text


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_the_docs_load_nothing_from_elsewhere(l1: Harness) -> None:
    page = (await l1.http.get("/docs")).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert urls, page
    assert all(url.startswith("/") for url in urls), urls
    for url in urls:
        response = await l1.http.get(url)
        assert response.status_code == 200, url
        assert len(response.content) > 500, url


async def test_a_live_worker_is_listed_and_leaves_when_it_stops(l1: Harness) -> None:
    async def workers() -> list[dict[str, object]]:
        return list((await l1.http.get("/workers")).json()["items"])

    listed = await wait_for(workers)
    assert len(listed) == 1
    worker = listed[0]
    assert worker["host"] and worker["started_at"] and worker["concurrency"] == 4
    run = await submit(l1.http, "invert", ["cat"])
    await l1.finished_run(run["run_id"])

    async def counted() -> bool:
        beats = await workers()
        return bool(beats) and beats[0]["renders_done"] >= 1

    await wait_for(counted, timeout=10)
    await l1.worker.stop()
    assert await workers() == []


async def test_queues_show_each_consumer(l1: Harness) -> None:
    queues = (await l1.http.get("/queues")).json()["items"]
    names = {queue["consumer"] for queue in queues}
    assert names == {"workers", "run-projector", "cache-projector"}
    for queue in queues:
        assert queue["pending"] >= 0 and queue["ack_pending"] >= 0 and queue["redelivered"] >= 0


@pytest.fixture
async def guarded(settings: Settings) -> Harness:
    tokens = msgspec.structs.replace(settings, api_tokens=("sesame",))
    async with Harness(tokens).running() as harness:
        yield harness  # type: ignore[misc]


async def test_pages_are_read_only_without_a_token_and_actions_need_it(guarded: Harness) -> None:
    http = guarded.http
    run = (
        await http.post(
            "/runs",
            json={"recipe": "invert", "inputs": ["cat"]},
            headers={"Authorization": "Bearer sesame"},
        )
    ).json()
    await guarded.finished_run(run["run_id"])
    page = await http.get(f"/ui/runs/{run['run_id']}")
    assert page.status_code == 200
    assert 'data-tokens-required="yes"' in page.text
    assert "Actions need the token" in page.text
    # The buttons call the API itself, which refuses them without the token.
    discard = f"/runs/{run['run_id']}?cancel=true"
    assert (await http.delete(discard)).status_code == 401
    assert (await http.delete(discard, headers={"Authorization": "Bearer nope"})).status_code == 403
    assert (await http.get("/ui/workers")).status_code == 200


async def test_a_worker_that_dies_drops_out_within_three_beats(settings: Settings) -> None:
    quick = msgspec.structs.replace(settings, heartbeat_every=0.3)
    async with Harness(quick).running() as l1:

        async def listed() -> list[dict[str, object]]:
            return list((await l1.http.get("/workers")).json()["items"])

        assert len(await wait_for(listed)) == 1
        await l1.worker.crash()  # no goodbye: only the expiry can tell
        died = asyncio.get_running_loop().time()

        async def gone() -> bool:
            return await listed() == []

        await wait_for(gone, timeout=10)
        # Three beats to expire, and the server's sweep of expired values on top.
        assert asyncio.get_running_loop().time() - died < 5


async def test_an_open_live_page_does_not_hold_up_the_api_stopping(l1: Harness) -> None:
    client = httpx.AsyncClient(base_url=l1.base_url, timeout=30)
    async with client, client.stream("GET", "/ui/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = events.aiter_lines()
        while not (await anext(lines)).startswith(": listening"):
            pass
        began = asyncio.get_running_loop().time()
        await l1.api.stop()
        # uvicorn would wait out its 10 s grace for a response still going.
        assert asyncio.get_running_loop().time() - began < 5


async def test_the_runs_page_filters_by_status(l1: Harness) -> None:
    run = await submit(l1.http, "mirror", ["cat"])
    assert (await l1.finished_run(run["run_id"]))["status"] == "completed"
    completed = (await l1.http.get("/ui", params={"status": "completed"})).text
    failed = (await l1.http.get("/ui", params={"status": "failed"})).text
    assert f'id="run-{run["run_id"]}"' in completed
    assert f'id="run-{run["run_id"]}"' not in failed
    assert 'data-status-filter="failed"' in failed
    assert (await l1.http.get("/ui", params={"status": "sideways"})).status_code == 400
