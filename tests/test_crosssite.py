"""Requests from other sites and other names, against a running L1: what a page on
another site could make the operator's browser send is refused, while the CLI, curl
and the dashboard itself go on as before."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from l1.api.crosssite import allowed_hosts
from l1.settings import Settings, SettingsError
from tests.harness import Harness, asset_hashes, upload
from tests.test_cli import l1_cli, succeeded

EVIL = "http://evil.example"
RUN = json.dumps({"recipe": "identity", "inputs": ["cat"]})
TOKEN = "crosssite-token"


def refused(response: httpx.Response, status: int, *words: str) -> None:
    """``response`` is an L1 error with ``status`` whose detail says each of ``words``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status_code"] == status
    for word in words:
        assert word in body["detail"], body


async def runs(l1: Harness) -> list[dict[str, Any]]:
    response = await l1.http.get("/runs")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def dashboard(l1: Harness) -> dict[str, str]:
    """What a browser adds to a fetch from one of L1's own pages."""
    return {"Origin": l1.base_url, "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
async def guarded(settings: Settings) -> AsyncIterator[Harness]:
    """L1 with a bearer token required for changes."""
    async with Harness(msgspec.structs.replace(settings, api_tokens=(TOKEN,))).running() as h:
        yield h


# --- mutating requests from other sites ----------------------------------------------


async def test_a_cross_site_text_plain_submit_is_refused_and_records_nothing(
    l1: Harness,
) -> None:
    # What a form or a no-preflight fetch on another site sends.
    simple = {"Content-Type": "text/plain", "Origin": EVIL}
    refused(await l1.http.post("/runs", content=RUN, headers=simple), 403, EVIL)
    assert await runs(l1) == []
    # The dashboard's own fetch of the same run passes.
    own = {**dashboard(l1), "Content-Type": "application/json"}
    accepted = await l1.http.post("/runs", content=RUN, headers=own)
    assert accepted.status_code in (200, 202), accepted.text
    assert [run["run_id"] for run in await runs(l1)] == [accepted.json()["run_id"]]


async def test_sec_fetch_site_says_cross_site_and_is_refused(l1: Harness) -> None:
    json_body = {"Content-Type": "application/json"}
    cases = [
        {"Content-Type": "text/plain", "Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
        # Sec-Fetch-Site is believed even without an Origin...
        {**json_body, "Sec-Fetch-Site": "cross-site"},
        # ...and over an Origin that claims to be L1's.
        {**json_body, "Origin": l1.base_url, "Sec-Fetch-Site": "cross-site"},
        # Another port of the same machine is the same site, but not L1.
        {**json_body, "Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},
        {**json_body, "Sec-Fetch-Site": "same-site"},
        # A sandboxed frame, a file:// page or a redirect across sites.
        {**json_body, "Origin": "null"},
    ]
    for headers in cases:
        refused(await l1.http.post("/runs", content=RUN, headers=headers), 403, "another site")
    assert await runs(l1) == []


async def test_gc_and_deletes_from_a_foreign_origin_are_refused(l1: Harness) -> None:
    item = await upload(l1.http, os.urandom(2048))  # held by nothing: gc would take it
    for headers in ({"Origin": EVIL}, {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}):
        refused(await l1.http.post("/cache/gc", headers=headers), 403)
        refused(await l1.http.delete(f"/cache/{item}", headers=headers), 403)
    assert (await l1.http.get(f"/cache/{item}")).status_code == 200
    # Not from a browser (no Origin, no Sec-Fetch-Site): gc goes ahead.
    collected = await l1.http.post("/cache/gc")
    assert collected.status_code == 200, collected.text
    assert item in collected.json()["deleted"]


async def test_a_cross_site_recipe_or_upload_is_refused(l1: Harness) -> None:
    # Both endpoints read any body (YAML, a raw file, a form): only the origin tells.
    recipe = b"name: planted\ninputs: [{name: a}]\nnodes:\n"
    recipe += b"  - {id: s, type: SOURCE, config: {input: a}}\n"
    recipe += b"  - {id: o, type: EFFECT, config: {effect: invert}, inputs: [s]}\noutput: o\n"
    simple = {"Content-Type": "text/plain", "Origin": EVIL}
    refused(await l1.http.post("/recipes", content=recipe, headers=simple), 403, EVIL)
    assert (await l1.http.get("/recipes/planted")).status_code == 404
    before = (await l1.http.get("/cache")).json()["items"]
    form = {"file": ("x.html", b"<script>alert(1)</script>", "text/html")}
    refused(await l1.http.post("/cache", files=form, headers={"Origin": EVIL}), 403, EVIL)
    assert (await l1.http.get("/cache")).json()["items"] == before


async def test_with_tokens_foreign_origins_are_still_refused_and_the_cli_renders(
    guarded: Harness,
) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    foreign = await guarded.http.post("/runs", content=RUN, headers={**bearer, "Origin": EVIL})
    refused(foreign, 403, EVIL)
    refused(await guarded.http.get("/runs", headers={"Host": "evil.example"}), 400)
    assert await runs(guarded) == []
    cat = (await asset_hashes(guarded.http))["cat"]
    result = await l1_cli(guarded.base_url, "--token", TOKEN, "render", "identity", "cat", "--sync")
    assert succeeded(result) == f"{cat}\n"


# --- what a JSON endpoint reads ------------------------------------------------------


async def test_json_endpoints_refuse_other_content_types(l1: Harness) -> None:
    for content_type in (
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/yaml",
    ):
        response = await l1.http.post("/runs", content=RUN, headers={"Content-Type": content_type})
        refused(response, 415, "application/json")
    assert await runs(l1) == []
    # As curl -H 'Content-Type: application/json' sends it: no Origin, JSON.
    for content_type in ("application/json", "application/json; charset=utf-8"):
        response = await l1.http.post("/runs", content=RUN, headers={"Content-Type": content_type})
        assert response.status_code in (200, 202), response.text
    # What the endpoints that read other bodies take is unchanged.
    recipe = b"name: plain\ninputs: [{name: a}]\nnodes:\n"
    recipe += b"  - {id: s, type: SOURCE, config: {input: a}}\n"
    recipe += b"  - {id: o, type: EFFECT, config: {effect: invert}, inputs: [s]}\noutput: o\n"
    yaml = {"Content-Type": "application/yaml"}
    assert (await l1.http.post("/recipes", content=recipe, headers=yaml)).status_code == 201
    raw = {"Content-Type": "application/octet-stream"}
    stored = await l1.http.post("/cache", content=os.urandom(512), headers=raw)
    assert stored.status_code == 201, stored.text


# --- hosts ---------------------------------------------------------------------------


async def test_a_host_that_is_not_l1s_is_400(l1: Harness) -> None:
    port = l1.settings.port
    refused(await l1.http.get("/runs", headers={"Host": "evil.example"}), 400, "evil.example")
    # The dashboard says so in a page of its own.
    page = await l1.http.get("/ui", headers={"Host": f"evil.example:{port}"})
    assert page.status_code == 400
    assert "evil.example" in page.text
    # DNS rebinding: the attacker's name points at L1, and its page is "same-origin".
    rebound = {
        "Host": f"evil.example:{port}",
        "Origin": f"http://evil.example:{port}",
        "Sec-Fetch-Site": "same-origin",
        "Content-Type": "application/json",
    }
    refused(await l1.http.post("/runs", content=RUN, headers=rebound), 400)
    assert await runs(l1) == []
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST"):
        response = await l1.http.get("/runs", headers={"Host": host})
        assert response.status_code == 200, (host, response.text)


async def test_allowed_hosts_replace_the_loopback_names(settings: Settings) -> None:
    named = msgspec.structs.replace(settings, allowed_hosts=("l1.example", "api-1:8100"))
    async with Harness(named).running() as l1:
        port = l1.settings.port
        for host in ("l1.example", "l1.example:8443", "api-1:8100", f"127.0.0.1:{port}"):
            response = await l1.http.get("/runs", headers={"Host": host})
            assert response.status_code == 200, (host, response.text)
        for host in ("api-1:8101", "api-1", "localhost", "evil.example"):
            refused(await l1.http.get("/runs", headers={"Host": host}), 400)
        # The Origin that a page served under an allowed name sends is L1's own.
        own = {"Host": "l1.example", "Origin": "https://l1.example"}
        own["Content-Type"] = "application/json"
        assert (await l1.http.post("/runs", content=RUN, headers=own)).status_code == 202


async def test_any_host_still_refuses_other_sites(settings: Settings) -> None:
    async with Harness(msgspec.structs.replace(settings, allowed_hosts=("*",))).running() as l1:
        assert (await l1.http.get("/runs", headers={"Host": "anything.example"})).status_code == 200
        foreign = {"Host": "anything.example", "Origin": EVIL, "Content-Type": "text/plain"}
        refused(await l1.http.post("/runs", content=RUN, headers=foreign), 403)


def test_default_allowed_hosts_follow_where_the_api_listens() -> None:
    def hosts(**env: str) -> tuple[str, ...]:
        return allowed_hosts(Settings.from_env(env), hostname="box")

    loopback = {"localhost", "127.0.0.1", "[::1]"}
    assert set(hosts(L1_HOST="127.0.0.1")) == loopback
    assert set(hosts(L1_HOST="::1")) == loopback
    assert set(hosts(L1_HOST="0.0.0.0")) == {"0.0.0.0", "box", *loopback}
    assert set(hosts(L1_HOST="10.1.2.3")) == {"10.1.2.3"}
    public = hosts(L1_HOST="10.1.2.3", L1_PUBLIC_URL="https://L1.Example.org/base")
    assert set(public) == {"10.1.2.3", "l1.example.org"}
    chosen = hosts(L1_ALLOWED_HOSTS=" api-1 , API-2:8100", L1_PUBLIC_URL="http://l1.test:8100")
    assert set(chosen) == {"api-1", "api-2:8100", "l1.test"}
    for wrong in ("http://l1.example", "*.example.org", "l1.example/ui"):
        with pytest.raises(SettingsError, match="L1_ALLOWED_HOSTS"):
            Settings.from_env({"L1_ALLOWED_HOSTS": wrong})


# --- headers of pages and downloads --------------------------------------------------


async def test_pages_are_never_framed_and_downloads_never_run(l1: Harness) -> None:
    for path in ("/ui", "/ui/cache", "/ui/effects", "/ui/runs/0000000000"):
        response = await l1.http.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)
        policy = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in policy, (path, policy)
        assert "script-src 'self'" in policy
        assert response.headers.get("x-frame-options") == "DENY"
        assert response.headers.get("x-content-type-options") == "nosniff"
        assert response.headers.get("referrer-policy") == "same-origin"
    docs = await l1.http.get("/docs")
    assert docs.headers.get("x-frame-options") == "DENY"
    assert "frame-ancestors 'none'" in docs.headers.get("content-security-policy", "")
    page = await upload(l1.http, b"<html><script>alert(document.domain)</script></html>")
    for response in (await l1.http.get(f"/cache/{page}"), await l1.http.head(f"/cache/{page}")):
        assert response.status_code == 200
        assert response.headers.get("content-security-policy") == "sandbox"
        assert response.headers.get_list("x-content-type-options") == ["nosniff"]
