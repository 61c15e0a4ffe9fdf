"""Recipes: registration and validation, multi-step runs, and shared steps rendered once."""

from __future__ import annotations

import io
from pathlib import Path

import nats
import pytest
from PIL import Image

from tests.conftest import Servers
from tests.harness import Harness
from tests.media import stream_summary

THUMB = b"""
name: sepia-thumb
version: "1"
description: A small sepia picture.
inputs:
  - name: picture
nodes:
  - {id: src, type: SOURCE, config: {input: picture}}
  - {id: small, type: RESIZE, config: {width: 64, height: 48, mode: stretch}, inputs: [src]}
  - {id: toned, type: EFFECT, config: {effect: sepia}, inputs: [small]}
output: toned
"""

GREY_THUMB = b"""
name: grey-thumb
inputs: [{name: picture}]
nodes:
  - {id: src, type: SOURCE, config: {input: picture}}
  - {id: small, type: RESIZE, config: {width: 64, height: 48, mode: stretch}, inputs: [src]}
  - {id: grey, type: EFFECT, config: {effect: grayscale}, inputs: [small]}
output: grey
"""


async def register(l1: Harness, document: bytes) -> dict:
    response = await l1.http.post("/recipes", content=document)
    assert response.status_code == 201, response.text
    return response.json()


async def run_of(l1: Harness, body: dict) -> dict:
    response = await l1.http.post("/runs", json=body)
    assert response.status_code in (200, 202), response.text
    run = await l1.finished_run(response.json()["run_id"], timeout=60)
    assert run["status"] == "completed", run
    return run


async def image_of(l1: Harness, content_hash: str) -> Image.Image:
    response = await l1.http.get(f"/cache/{content_hash}")
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


async def test_a_recipe_renders_step_by_step(l1: Harness) -> None:
    stored = await register(l1, THUMB)
    assert len(stored["content_hash"]) == 64
    assert (await l1.http.get("/recipes/sepia-thumb")).json()["content_hash"] == stored[
        "content_hash"
    ]
    run = await run_of(l1, {"recipe": "sepia-thumb", "inputs": {"picture": "cat"}})
    assert [s["node_id"] for s in run["steps"]] == ["small", "toned"]
    assert all(s["status"] == "completed" for s in run["steps"])
    picture = await image_of(l1, run["output_hash"])
    assert picture.size == (64, 48)
    r, g, b = picture.convert("RGB").getpixel((32, 24))
    assert r >= g >= b  # sepia tones run warm
    effects = {e["name"] for e in run["provenance"]["effects"]}
    assert effects == {"resize", "sepia"}
    assert [i["name"] for i in run["provenance"]["inputs"]] == ["cat"]


async def test_a_shared_step_is_rendered_once_for_two_runs(l1: Harness, servers: Servers) -> None:
    await register(l1, THUMB)
    await register(l1, GREY_THUMB)
    first = await run_of(l1, {"recipe": "sepia-thumb", "inputs": ["cat"]})
    second = await run_of(l1, {"recipe": "grey-thumb", "inputs": ["cat"]})
    shared = next(s for s in second["steps"] if s["node_id"] == "small")
    assert shared["status"] == "cached"
    assert shared["output_hash"] == first["steps"][0]["output_hash"]
    assert shared["cache_id"] == first["steps"][0]["cache_id"]
    assert await _step_renders(servers, "small") == 1
    grey = (await image_of(l1, second["output_hash"])).convert("RGB")
    assert len(set(grey.getpixel((10, 10)))) == 1


async def test_the_activity_lists_intermediates_as_deletable(l1: Harness) -> None:
    await register(l1, THUMB)
    run = await run_of(l1, {"recipe": "sepia-thumb", "inputs": ["cat"]})
    intermediate = run["steps"][0]["output_hash"]
    meta = (await l1.http.get(f"/cache/{intermediate}/meta")).json()
    assert meta["deletable"] is True
    assert (await l1.http.delete(f"/cache/{run['output_hash']}")).status_code == 409


async def test_effect_params_change_the_run_and_are_validated(l1: Harness) -> None:
    plain = await run_of(l1, {"recipe": "blur", "inputs": ["cat"]})
    strong = await run_of(l1, {"recipe": "blur", "inputs": ["cat"], "params": {"radius": 6}})
    assert plain["run_id"] != strong["run_id"]
    assert plain["output_hash"] != strong["output_hash"]
    bad = await l1.http.post(
        "/runs", json={"recipe": "blur", "inputs": ["cat"], "params": {"radius": -1}}
    )
    assert bad.status_code == 422
    assert "radius" in bad.json()["detail"]


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (THUMB.replace(b"type: RESIZE", b"type: WOBBLE"), ["small", "WOBBLE"]),
        (THUMB.replace(b"inputs: [src]}", b"inputs: [toned]}"), ["cycle"]),
        (THUMB.replace(b"inputs: [small]", b"inputs: [nowhere]"), ["toned", "nowhere"]),
        (THUMB.replace(b"width: 64", b"width: -3"), ["small", "width"]),
        (THUMB.replace(b"effect: sepia", b"effect: nope"), ["toned", "nope"]),
    ],
)
async def test_invalid_recipes_are_422_naming_the_node(
    l1: Harness, document: bytes, words: list[str]
) -> None:
    response = await l1.http.post("/recipes", content=document)
    assert response.status_code == 422, response.text
    for word in words:
        assert word in response.json()["detail"]


async def test_unbound_or_unknown_inputs_are_422(l1: Harness) -> None:
    await register(l1, THUMB)
    for inputs in ({"photo": "cat"}, ["cat", "dog"]):
        response = await l1.http.post("/runs", json={"recipe": "sepia-thumb", "inputs": inputs})
        assert response.status_code == 422, response.text


async def _step_renders(servers: Servers, node_id: str) -> int:
    """How many times a step with this node id finished, across every run."""
    nc = await nats.connect(servers.nats_url)
    try:
        js = nc.jetstream()
        subscription = await js.subscribe("l1.runs.*.progress", ordered_consumer=True)
        count = 0
        try:
            while True:
                msg = await subscription.next_msg(timeout=1)
                if b'"output_hash"' in msg.data and f'"node_id":"{node_id}"'.encode() in msg.data:
                    count += 1
        except TimeoutError:
            return count
    finally:
        await nc.close()


MIX = b"""
name: clip-mix
inputs: [{name: clip}, {name: picture}]
nodes:
  - {id: video, type: SOURCE, config: {input: clip}}
  - {id: overlay, type: SOURCE, config: {input: picture}}
  - {id: part, type: SEGMENT, config: {start: 0.5, duration: 1}, inputs: [video]}
  - {id: small, type: RESIZE, config: {width: 160, height: 120, mode: stretch}, inputs: [part]}
  - {id: mixed, type: BLEND, config: {mode: screen, opacity: 0.3}, inputs: [small, overlay]}
  - {id: both, type: SEQUENCE, inputs: [mixed, small]}
  - {id: out, type: MUX, inputs: [both, video]}
output: out
"""


async def test_every_node_type_in_one_video_recipe(l1: Harness, tmp_path: Path) -> None:
    await register(l1, MIX)
    run = await run_of(l1, {"recipe": "clip-mix", "inputs": {"clip": "clip", "picture": "cat"}})
    assert [s["node_id"] for s in run["steps"]] == ["part", "small", "mixed", "both", "out"]
    output = tmp_path / "out.mp4"
    output.write_bytes((await l1.http.get(f"/cache/{run['output_hash']}")).content)
    summary = stream_summary(output)
    assert (summary["width"], summary["height"]) == (160, 120)
    assert summary["seconds"] == pytest.approx(2.0, abs=0.1)
    assert summary["audio_codec"] is not None
    assert {e["name"] for e in run["provenance"]["effects"]} == {
        "segment",
        "resize",
        "blend",
        "concatenate",
        "mux",
    }
    activity_items = (await l1.http.get(f"/cache/{run['steps'][0]['output_hash']}/meta")).json()
    assert activity_items["deletable"] is True
