"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright, against a real deployment. Screenshots of every page are kept under
``test-artifacts/ui`` (or ``$L1_TEST_ARTIFACTS``).

Skipped, saying why, when Chromium or Playwright is not installed; ``make test``
installs both where it can.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from l1.events import subjects
from l1.events.schemas import RunProgress
from l1.settings import Settings
from l1.timestamps import utc_now
from tests.harness import Harness, submit, upload, wait_for
from tests.processes import with_test_effects
from tests.test_segments_api import RUN_ID, change, split_run, store, with_part

CHROMIUM = os.environ.get("L1_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = (
    Path(
        os.environ.get(
            "L1_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"
        )
    )
    / "ui"
)
RECIPE = b"""
name: sepia-thumb
version: "1"
description: A small sepia picture.
inputs:
  - name: picture
nodes:
  - {id: src, type: SOURCE, config: {input: picture}}
  - {id: small, type: RESIZE, config: {width: 320, height: 240, mode: fit}, inputs: [src]}
  - {id: toned, type: EFFECT, config: {effect: sepia}, inputs: [small]}
output: toned
"""
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
# How long the page may take to show what the deployment did (renders are small).
SHOWN_WITHIN = 30_000

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright is not installed (pip install -e '.[test]')"
)
if not shutil.which(CHROMIUM):
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium for the module's tests."""
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # Root in a container has no user namespace for the sandbox; autoplay with
            # sound is refused without a user gesture, and the test plays the video.
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        yield launched
        await launched.close()


@pytest.fixture
async def l1(settings: Settings) -> AsyncIterator[Harness]:
    """A deployment with the test-only effects and quick retries."""
    async with Harness(with_test_effects(settings, max_deliver=2)).running() as harness:
        yield harness


@pytest.fixture
async def page(browser: Any, l1: Harness) -> AsyncIterator[Any]:
    """A fresh browser page on the deployment, closed before the deployment stops
    (its live updates keep a connection open)."""
    context = await browser.new_context(base_url=l1.base_url, viewport=LAPTOP)
    opened = await context.new_page()
    yield opened
    await context.close()


async def holds(page: Any, expression: str) -> None:
    """Wait until ``expression`` is true in the page. Each check is a plain evaluation:
    Playwright's ``wait_for_function`` compiles its predicate with ``eval``, which the
    dashboard's Content-Security-Policy forbids."""
    await wait_for(lambda: page.evaluate(expression), timeout=SHOWN_WITHIN / 1000)


async def shoot(page: Any, name: str) -> None:
    """Keep a screenshot of the page at laptop and at phone width."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
    await page.set_viewport_size(LAPTOP)
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 0


async def test_a_render_from_the_effects_page_goes_from_queued_to_completed_live(
    page: Any, l1: Harness
) -> None:
    await l1.worker.stop()  # so that the run is seen waiting first
    await page.goto("/ui/effects")
    await shoot(page, "effects")
    await page.click("#effect-sepia summary")
    form = page.locator("#effect-sepia form")
    await form.locator("input[name='param:strength']").fill("0.8")
    await form.locator("button[type=submit]").click()
    await page.wait_for_url("**/ui/runs/*")
    state = page.locator("#run-state")
    assert await state.get_attribute("data-status") == "pending"
    await page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    l1.worker.start()
    await page.wait_for_selector("#run-state[data-status=completed]", timeout=SHOWN_WITHIN)
    assert await page.evaluate("window.loadedOnce === true"), "the page reloaded"
    image = page.locator("#output-image")
    await image.wait_for(timeout=SHOWN_WITHIN)
    await holds(page, "document.getElementById('output-image').naturalWidth > 0")
    run_id = page.url.rsplit("/", 1)[1]
    run = (await l1.http.get(f"/runs/{run_id}")).json()
    assert run["status"] == "completed"
    assert run["steps"][-1]["params"]["strength"] == 0.8
    await shoot(page, "run-completed")


async def test_the_runs_list_shows_a_new_run_and_its_progress_live(page: Any, l1: Harness) -> None:
    await page.goto("/ui")
    await page.wait_for_selector("#live-state.on", timeout=SHOWN_WITHIN)
    run = await submit(l1.http, "invert", ["cat"])
    row = f"#run-{run['run_id']}"
    await page.wait_for_selector(f"{row}[data-status=completed]", timeout=SHOWN_WITHIN)
    assert await page.locator(f"{row} img.mini").count() == 1
    await shoot(page, "runs")


async def test_the_output_video_plays_its_first_second(page: Any, l1: Harness) -> None:
    run = await submit(l1.http, "invert", ["clip"])
    assert (await l1.finished_run(run["run_id"], timeout=120))["status"] == "completed"
    await page.goto(f"/ui/runs/{run['run_id']}")
    video = page.locator("#output-video")
    await video.wait_for(timeout=SHOWN_WITHIN)
    await page.evaluate(
        "() => { const v = document.getElementById('output-video'); v.muted = true; v.play(); }"
    )
    await holds(page, "document.getElementById('output-video').currentTime >= 1.0")
    # Seeking asks the API for a range of the file.
    seek = await page.evaluate(
        """() => new Promise((done) => {
            const v = document.getElementById('output-video');
            v.pause();
            v.addEventListener('seeked', () => done(v.currentTime), {once: true});
            v.currentTime = 0.5;
        })"""
    )
    assert seek == pytest.approx(0.5, abs=0.1)
    await shoot(page, "run-video")


async def test_a_slow_run_is_cancelled_from_its_page(
    page: Any, l1: Harness, tmp_path: Path
) -> None:
    marker = tmp_path / "hanging"
    marker.touch()
    item = await upload(l1.http, b"hang:" + str(marker).encode())
    run = await submit(l1.http, "hang", [item])

    async def running() -> bool:
        return bool((await l1.http.get(f"/runs/{run['run_id']}")).json()["status"] == "running")

    await wait_for(running)
    await page.goto(f"/ui/runs/{run['run_id']}")
    page.on("dialog", lambda dialog: dialog.accept())
    await page.click("button[data-action=cancel]")
    await page.wait_for_selector("#run-state[data-status=cancelled]", timeout=SHOWN_WITHIN)
    assert (await l1.http.get(f"/runs/{run['run_id']}")).json()["status"] == "cancelled"
    assert await page.locator("svg.graph g.step-cancelled[data-node=output]").count() == 1
    await shoot(page, "run-cancelled")
    await page.set_viewport_size(PHONE)  # its input's name is a whole hash: it must wrap
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0


async def test_a_dead_letter_is_retried_from_its_page(
    page: Any, l1: Harness, tmp_path: Path
) -> None:
    marker = tmp_path / "failing"
    marker.touch()
    item = await upload(l1.http, b"flaky:" + str(marker).encode())
    run = await submit(l1.http, "flaky", [item])
    assert (await l1.finished_run(run["run_id"]))["status"] == "failed"
    await page.goto("/ui/dead")
    row = page.locator(f"tr[data-run='{run['run_id']}']")
    await row.wait_for(timeout=SHOWN_WITHIN)
    await shoot(page, "dead-letters")
    marker.unlink()  # the failure was transient after all
    await row.locator("button").click()
    await page.wait_for_url(f"**/ui/runs/{run['run_id']}")
    await page.wait_for_selector("#run-state[data-status=completed]", timeout=SHOWN_WITHIN)
    assert (await l1.http.get(f"/runs/{run['run_id']}")).json()["generation"] == 1


async def test_the_other_pages_render_at_laptop_and_phone_width(page: Any, l1: Harness) -> None:
    run = await submit(l1.http, "sepia", ["cat"])
    await l1.finished_run(run["run_id"])
    await page.goto("/ui/cache")  # the first of several pages, each loaded from L1 alone
    await holds(
        page,
        "(() => { const all = [...document.querySelectorAll('.thumb img')];"
        " return all.length >= 3 && all.every((img) => img.complete && img.naturalWidth > 0); })()",
    )
    await shoot(page, "cache")
    await page.goto("/ui/workers")
    assert await page.locator("#workers-table tbody tr").count() == 1
    await shoot(page, "workers")
    registered = await l1.http.post(
        "/recipes", content=RECIPE, headers={"Content-Type": "application/yaml"}
    )
    assert registered.status_code == 201, registered.text
    recipe_run = await submit(l1.http, "sepia-thumb", ["cat"])
    assert (await l1.finished_run(recipe_run["run_id"]))["status"] == "completed"
    await page.goto(f"/ui/runs/{recipe_run['run_id']}")
    for node in ("src", "small", "toned"):
        assert await page.locator(f"svg.graph g[data-node={node}]").count() == 1
    assert await page.locator("svg.graph path.edge").count() >= 2
    await shoot(page, "run-recipe")
    await page.goto("/ui/effects")
    await page.click("#effect-blur summary")
    await page.click("#recipe-sepia-thumb summary")
    await shoot(page, "effects-open")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto("/docs")
    await page.wait_for_selector(".swagger-ui .info", timeout=SHOWN_WITHIN)
    await shoot(page, "docs")
    # Offline: everything the docs (and the pages before them) asked for came from L1.
    assert requested and all(url.startswith((l1.base_url, "data:")) for url in requested), [
        url for url in requested if not url.startswith(l1.base_url)
    ]
    # Nothing on the phone-width page runs off the side.
    await page.set_viewport_size(PHONE)
    pages = (
        "/ui",
        f"/ui/runs/{run['run_id']}",
        "/ui/cache",
        "/ui/effects",
        "/ui/dead",
        "/ui/workers",
    )
    for path in pages:
        await page.goto(path)
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, path


async def test_actions_need_the_token_when_the_server_has_tokens(
    browser: Any, settings: Settings
) -> None:
    guarded = msgspec.structs.replace(settings, api_tokens=("sesame",))
    async with Harness(guarded).running() as l1:
        auth = {"Authorization": "Bearer sesame"}
        response = await l1.http.post(
            "/runs", json={"recipe": "sepia", "inputs": ["cat"]}, headers=auth
        )
        run = response.json()
        await l1.finished_run(run["run_id"])
        context = await browser.new_context(base_url=l1.base_url, viewport=LAPTOP)
        page = await context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        try:
            await page.goto(f"/ui/runs/{run['run_id']}")  # read-only: no token needed
            await page.click("button[data-action=discard]")
            await page.wait_for_selector("#flash.error", timeout=SHOWN_WITHIN)
            assert "401" in await page.locator("#flash").inner_text()
            assert (await l1.http.get(f"/runs/{run['run_id']}")).status_code == 200

            await page.fill("#token-input", "sesame")
            await page.click("#token-form button")
            await page.click("button[data-action=discard]")
            await page.wait_for_url("**/ui", timeout=SHOWN_WITHIN)
            assert (await l1.http.get(f"/runs/{run['run_id']}")).status_code == 404
        finally:
            await context.close()


async def test_a_split_run_shows_its_parts_live_at_laptop_and_phone_width(
    page: Any, l1: Harness
) -> None:
    run = with_part(split_run(), "small~0", "completed", output="a" * 64, worker="host-a")
    run = with_part(run, "toned~0", "completed", output="b" * 64, worker="host-a")
    await store(l1.settings, with_part(run, "small~1", "dispatched", worker="host-b"))
    await page.goto(f"/ui/runs/{RUN_ID}")
    assert await page.locator("g.strip rect.part").count() == 6
    assert await page.locator("#preview-link").count() == 1
    await page.wait_for_selector("#live-state.on", timeout=SHOWN_WITHIN)
    # A part finishes: the page hears of the run and redraws the strip from the record.
    await change(
        l1.settings, RUN_ID, lambda run: with_part(run, "small~1", "completed", output="c" * 64)
    )
    nc = await nats.connect(str(l1.settings.nats_url))
    try:
        event = RunProgress(event_id=f"{RUN_ID}.p1", at=utc_now(), run_id=RUN_ID, percent=40.0)
        await nc.publish(subjects.run_event(RUN_ID, "progress"), msgspec.json.encode(event))
        await nc.flush()
    finally:
        await nc.close()
    await holds(
        page,
        "document.querySelector('g.strip[data-parts=small] rect[data-index=\"1\"]')"
        ".classList.contains('part-completed')",
    )
    assert "2/3 parts" in (await page.locator("g.step[data-node=small]").text_content() or "")
    await shoot(page, "run-segments")
    await page.set_viewport_size(PHONE)
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
