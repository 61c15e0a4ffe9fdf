"""The OpenAPI document is the contract: every status an operation answers is in it, with
the one error body; ids, limits and bodies carry the rules the server applies; media types
are the ones served. (tests/test_fuzz.py holds a deployment's answers to it.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar.serialization import encode_json

from l1.api.app import create_app
from l1.api.errors import MAX_DETAIL, ErrorBody
from l1.api.lookups import MIN_PREFIX
from l1.api.openapi import ITEM_PATTERN, RUN_ID_PATTERN
from l1.assets import known_assets
from l1.identifiers import is_content_hash
from l1.runs.recipes import Recipe
from l1.schemas import RunSubmission
from l1.settings import Settings
from tests.harness import Harness

MUTATING = {"post", "put", "patch", "delete"}
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The app's OpenAPI document, as ``/docs/openapi.json`` serves it (no server needed)."""
    app = create_app(Settings.from_env(), subscribers=False)
    return dict(json.loads(encode_json(app.openapi_schema.to_schema())))


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every operation of ``document``."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "head", "post", "put", "patch", "delete"}:
                yield method, path, operation


def test_every_error_is_documented_with_the_one_error_body(document: dict[str, Any]) -> None:
    # The errors that are not the error body: readiness names each dependency, and an
    # unsatisfiable range (of an item, or of a run's preview) has no body at all.
    other_bodies = {
        ("get", "/health", "503"),
        ("get", "/cache/{content_hash}", "416"),
        ("get", "/runs/{run_id}/preview", "416"),
    }
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert "400" in responses, (method, path)  # a bad Host header, a malformed segment
        for status, response in responses.items():
            if int(status) < 400 or (method, path, status) in other_bodies:
                continue
            assert response["content"] == {"application/json": {"schema": ERROR_BODY}}, (
                method,
                path,
                status,
            )


def test_mutating_operations_document_the_token_and_cross_site_refusals(
    document: dict[str, Any],
) -> None:
    mutating = [(m, p, o) for m, p, o in operations(document) if m in MUTATING]
    assert len(mutating) >= 10
    for method, path, operation in mutating:
        assert {"401", "403"} <= operation["responses"].keys(), (method, path)


def test_operations_naming_a_resource_document_404(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        if "{" in path:
            assert "404" in operation["responses"], (method, path)


# What each of these operations answers besides 400 (and the token/cross-site refusals).
ANSWERS = {
    ("post", "/runs"): {"200", "202", "409", "413", "415", "422", "502", "503"},
    ("post", "/recipes"): {"201", "409", "413", "422", "503"},
    ("post", "/runs/{run_id}/retry"): {"202", "404", "409", "503"},
    ("post", "/runs/{run_id}/cancel"): {"200", "404", "409", "503"},
    ("post", "/runs/{run_id}/publish"): {"200", "404", "409", "502", "503"},
    ("delete", "/runs/{run_id}"): {"200", "404", "409", "503"},
    ("get", "/runs/{run_id}"): {"200", "404", "409", "503"},
    ("get", "/cache/{content_hash}"): {"200", "206", "304", "404", "409", "416", "503"},
    ("delete", "/cache/{content_hash}"): {"204", "404", "409", "503"},
    ("post", "/cache"): {"200", "201", "409", "413", "503", "507"},
    ("post", "/cache/import"): {"200", "201", "403", "404", "413", "422", "507"},
    ("get", "/recipes/{name}"): {"200", "404"},
    ("get", "/health"): {"200", "503"},
    ("get", "/"): {"200", "302"},
}


@pytest.mark.parametrize(("method", "path"), sorted(ANSWERS))
def test_each_operation_documents_what_it_answers(
    document: dict[str, Any], method: str, path: str
) -> None:
    documented = document["paths"][path][method]["responses"].keys()
    assert ANSWERS[method, path] <= documented, ANSWERS[method, path] - documented


def test_ids_in_paths_carry_the_patterns_the_lookups_apply(document: dict[str, Any]) -> None:
    patterns = {"run_id": RUN_ID_PATTERN, "content_hash": ITEM_PATTERN}
    seen = set()
    for method, path, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] in patterns:
                assert parameter["schema"]["pattern"] == patterns[parameter["name"]], (method, path)
                assert parameter["schema"]["maxLength"] == 64
                seen.add(parameter["name"])
    assert seen == set(patterns)
    full = "0123456789abcdef" * 4
    assert is_content_hash(full)
    for text in (full, full[:MIN_PREFIX], full[:63]):
        assert re.fullmatch(RUN_ID_PATTERN, text) and re.fullmatch(ITEM_PATTERN, text), text
    for text in (full[: MIN_PREFIX - 1], full.upper(), full + "0", "g" * 64, "../x", "ab\ncd"):
        assert not re.fullmatch(RUN_ID_PATTERN, text), text
        assert not re.fullmatch(ITEM_PATTERN, text), text
    for name in known_assets():  # an item, never a run, may be named by its asset
        assert re.fullmatch(ITEM_PATTERN, name) and not re.fullmatch(RUN_ID_PATTERN, name)


def test_lists_document_their_limit_and_cursor_bounds(document: dict[str, Any]) -> None:
    lists = 0
    for _, path, operation in operations(document):
        parameters = {p["name"]: p["schema"] for p in operation.get("parameters", [])}
        if "limit" in parameters:
            lists += 1
            limit = parameters["limit"]
            assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 1000, 100), path
            assert parameters["cursor"]["maxLength"] <= 512, path
    assert lists == 4  # runs, cache, recipes, dead letters


def _without_null_defaults(node: Any) -> Any:
    # OpenAPI's serializer leaves out ``"default": null``; it says nothing either way.
    if isinstance(node, dict):
        return {
            k: _without_null_defaults(v)
            for k, v in node.items()
            if not (k == "default" and v is None)
        }
    if isinstance(node, list):
        return [_without_null_defaults(v) for v in node]
    return node


def test_json_bodies_are_the_decoders_own_schemas(document: dict[str, Any]) -> None:
    _, components = msgspec.json.schema_components([RunSubmission])
    body = document["paths"]["/runs"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == _without_null_defaults(components["RunSubmission"])
    schema = body["schema"]
    assert schema["additionalProperties"] is False
    as_list, as_map = schema["properties"]["inputs"]["anyOf"]
    assert (as_list["minItems"], as_list["maxItems"]) == (1, 32)
    assert (as_map["minProperties"], as_map["maxProperties"]) == (1, 32)
    recipe = document["paths"]["/recipes"]["post"]["requestBody"]["content"]["application/json"]
    assert recipe["schema"]["properties"]["nodes"]["maxItems"] == 256
    name = msgspec.json.schema(Recipe)["$defs"]["Recipe"]["properties"]["name"]
    assert recipe["schema"]["properties"]["name"]["pattern"] == name["pattern"]


def test_media_types_are_the_ones_served(document: dict[str, Any]) -> None:
    download = document["paths"]["/cache/{content_hash}"]
    for status in ("200", "206"):
        assert list(download["get"]["responses"][status]["content"]) == ["*/*"]
    assert "content" not in download["get"]["responses"]["304"]
    assert "content" not in download["head"]["responses"]["200"]
    upload = document["paths"]["/cache"]["post"]["requestBody"]["content"]
    assert set(upload) == {"application/octet-stream", "multipart/form-data"}
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]
    assert list(metrics["content"]) == ["text/plain"]


async def test_metrics_are_prometheus_text_with_one_charset(l1: Harness) -> None:
    response = await l1.http.get("/metrics")
    assert response.status_code == 200
    content_type = response.headers["content-type"]
    assert content_type.startswith("text/plain;"), content_type
    assert content_type.count("charset") == 1, content_type
    assert "# TYPE l1_runs_submitted" in response.text


async def test_error_answers_are_the_documented_error_body(l1: Harness) -> None:
    document = (await l1.http.get("/docs/openapi.json")).json()
    missing = "0" * 64
    requests: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("GET", "/runs", "/runs", {"params": {"limit": 0}}, 400),
        ("GET", "/runs/{run_id}", "/runs/zz", {}, 400),
        ("GET", "/runs/{run_id}", f"/runs/{missing}", {}, 404),
        ("GET", "/cache/{content_hash}", "/cache/" + "x" * 2000, {}, 400),
        ("DELETE", "/cache/{content_hash}", f"/cache/{missing}", {}, 404),
        ("GET", "/effects/{name}", "/effects/nope", {}, 404),
        ("POST", "/runs", "/runs", {"json": {"recipe": "nope", "inputs": ["cat"]}}, 422),
        ("POST", "/runs", "/runs", {"json": {"recipe": "dog", "inputs": []}}, 400),
        ("POST", "/cache/import", "/cache/import", {"params": {"path": "relative"}}, 400),
        (
            "POST",
            "/runs",
            "/runs",
            {"content": b"{}", "headers": {"Content-Type": "text/plain"}},
            415,
        ),
        (
            "POST",
            "/cache/gc",
            "/cache/gc",
            {"headers": {"Origin": "http://elsewhere.example"}},
            403,
        ),
    ]
    for method, template, path, options, status in requests:
        response = await l1.http.request(method, path, **options)
        assert response.status_code == status, (method, path, response.text[:200])
        assert str(status) in document["paths"][template][method.lower()]["responses"]
        assert response.headers["content-type"] == "application/json"
        body = msgspec.json.decode(response.content, type=ErrorBody)  # no other field
        assert body.status_code == status
        assert 0 < len(body.detail) <= MAX_DETAIL


async def test_options_names_every_method_of_the_path(l1: Harness) -> None:
    """``Allow`` lists what the document lists for a path, whichever handler came first."""
    document = (await l1.http.get("/docs/openapi.json")).json()
    run_id, content_hash = "a" * 64, "b" * 64
    for path, concrete in [
        ("/runs", "/runs"),
        ("/runs/{run_id}", f"/runs/{run_id}"),
        ("/cache", "/cache"),
        ("/cache/{content_hash}", f"/cache/{content_hash}"),
    ]:
        answer = await l1.http.options(concrete)
        assert answer.status_code == 204
        allowed = {method.strip() for method in answer.headers["allow"].split(",")}
        documented = {method.upper() for method in document["paths"][path]}
        assert allowed - {"OPTIONS"} == documented, (concrete, allowed, documented)
