"""The API against hostile input: a property-based fuzz of every operation in its own
OpenAPI schema (schemathesis), and hand-written hostile requests. Nothing may answer 5xx;
every refusal is a 4xx with a JSON ``detail``, in good time; and every answer is one the
schema documents (status, media type, body and headers)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import pytest

from l1.settings import Settings
from tests.harness import Harness, submit, upload, wait_for
from tests.l2_server import FakeL2
from tests.processes import EFFECTS

# Cases per strategy of an operation (valid, invalid, each seed): about 2900 in all,
# well under 90 seconds.
EXAMPLES = 40
# Seconds within which every hostile request must be answered.
ANSWER_WITHIN = 10.0


@pytest.fixture
async def l1(settings: Settings) -> AsyncIterator[Harness]:
    """A deployment with an L2 to publish to and the test-only effects."""
    l2 = FakeL2()
    await l2.start()
    tuned = msgspec.structs.replace(
        settings,
        l2_url=l2.url,
        effect_modules=(EFFECTS,),
        ack_wait=2.0,
        max_deliver=2,
        retry_delay=0.1,
    )
    try:
        async with Harness(tuned).running() as harness:
            yield harness
    finally:
        await l2.stop()


@dataclass
class FuzzReport:
    """What the fuzz sent and what came back."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: dict[str, Counter[int]] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    # Each way an answer departed from the schema, once, with one case that showed it.
    nonconforming: dict[str, str] = field(default_factory=dict)


GREY = b"""
name: fuzz-grey
inputs: [{name: picture}]
nodes:
  - {id: src, type: SOURCE, config: {input: picture}}
  - {id: grey, type: EFFECT, config: {effect: grayscale}, inputs: [src]}
output: grey
"""


@dataclass
class Seeds:
    """Real values the fuzz mixes into its cases, so that it reaches past "not found"."""

    path: dict[str, list[str]]
    runs: list[dict[str, Any]]
    imports: list[str]


async def seed(l1: Harness) -> Seeds:
    """Items, a completed and a failed run (which leaves a dead letter), a recipe and a
    file to import."""
    item = await upload(l1.http, b"fuzz seed " + os.urandom(8))
    completed = await l1.finished_run((await submit(l1.http, "poison", [item]))["run_id"])
    poisoned = await upload(l1.http, b"poison " + os.urandom(8))
    failed = await l1.finished_run((await submit(l1.http, "poison", [poisoned]))["run_id"])
    assert (completed["status"], failed["status"]) == ("completed", "failed")
    assert (await l1.http.post("/recipes", content=GREY)).status_code == 201
    importable = l1.settings.import_roots[0] / "importable.bin"
    importable.write_bytes(b"fuzz import " + os.urandom(8))
    inputs = [["cat"], ["dog"], [item], {"picture": "cat"}]
    runs = [
        {"recipe": recipe, "inputs": given, "output_name": name}
        for recipe in ("dog", "identity", "poison", "fuzz-grey")
        for given in inputs
        for name in ("out", "\u00e9t\u00e9")
    ]
    return Seeds(
        path={
            "run_id": [completed["run_id"], failed["run_id"]],
            "content_hash": [item, poisoned, completed["output_hash"]],
            "name": ["fuzz-grey"],
        },
        runs=runs,
        imports=[str(importable), str(importable.parent / "missing.bin")],
    )


def strategies_for(operation: Any, seeds: Seeds) -> list[Any]:
    """Valid and invalid cases of ``operation``, and valid ones built around seeds."""
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    with contextlib.suppress(Exception):  # an operation with nothing to get wrong
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    names = {p.name for p in operation.path_parameters}
    for name in names & seeds.path.keys():
        strategies += [operation.as_strategy(path_parameters={name: v}) for v in seeds.path[name]]
    if operation.label == "POST /runs":
        bodies = st.sampled_from(seeds.runs)
        strategies.append(bodies.flatmap(lambda body: operation.as_strategy(body=body)))
    if operation.label == "POST /cache/import":
        strategies += [operation.as_strategy(query={"path": path}) for path in seeds.imports]
    return strategies


def fuzz_operation(strategies: list[Any], base_url: str, session: Any, report: FuzzReport) -> None:
    """Send about ``EXAMPLES`` cases per strategy of one operation; record every answer."""
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st
    from schemathesis.core.failures import Failure, FailureGroup

    checks = conformance_checks()

    @hypothesis_settings(
        max_examples=EXAMPLES * len(strategies),
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=st.one_of(strategies))
    def check(case: Any) -> None:
        # Generous: a cancel or a ?wait= may rightly take seconds.
        response = case.call(base_url=base_url, session=session, timeout=60)
        report.cases += 1
        report.statuses[response.status_code] += 1
        report.by_operation.setdefault(case.operation.label, Counter())[response.status_code] += 1
        if response.status_code >= 500:
            report.server_errors.append(
                f"{case.operation.label} -> {response.status_code}: {response.text[:300]}"
            )
        try:
            case.validate_response(response, checks=checks)
        except (Failure, FailureGroup) as error:
            # Recorded rather than raised: one report of every departure, not a shrink.
            failures = error.exceptions if isinstance(error, FailureGroup) else (error,)
            for failure in failures:
                key = f"{case.operation.label} -> {response.status_code}: {failure.title}"
                example = f"{failure.message[:300]}\n{case.as_curl_command(base_url=base_url)}"
                report.nonconforming.setdefault(key, example)

    check()


def conformance_checks() -> list[Any]:
    """What every answer is held to: no 5xx, and a status, media type, body and headers
    that the operation's schema documents."""
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]


# Reads first, then writes, deletions last, so that the seeds live as long as possible.
ORDER = {"GET": 0, "HEAD": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}


def fuzz(document: dict[str, Any], base_url: str, seeds: Seeds) -> FuzzReport:
    """Fuzz every operation of the schema ``document`` against ``base_url``."""
    import requests
    import schemathesis

    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda operation: ORDER.get(operation.method.upper(), 1))
    report = FuzzReport()
    with requests.Session() as session:
        for operation in operations:
            fuzz_operation(strategies_for(operation, seeds), base_url, session, report)
    return report


async def test_fuzz_the_api_against_its_own_schema(l1: Harness) -> None:
    pytest.importorskip("schemathesis", reason="the fuzz needs schemathesis (test extra)")
    seeds = await seed(l1)
    document = (await l1.http.get("/docs/openapi.json")).json()
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = await asyncio.to_thread(fuzz, document, l1.base_url, seeds)
    elapsed = loop.time() - started
    operations = sum(len(methods) for methods in document["paths"].values())
    print(
        f"schemathesis: {report.cases} cases over {operations} operations in {elapsed:.1f}s; "
        f"statuses {dict(sorted(report.statuses.items()))}"
    )
    for label, statuses in sorted(report.by_operation.items()):
        print(f"  {label}: {dict(sorted(statuses.items()))}")
    for departure, example in sorted(report.nonconforming.items()):
        print(f"NONCONFORMING {departure}\n    {example}")
    assert report.cases > 0
    assert report.server_errors == []
    assert sorted(report.nonconforming) == []
    assert (await l1.http.get("/health")).status_code == 200


# --- hand-written hostile input ------------------------------------------------------


async def refused(
    l1: Harness, method: str, path: str, *, expect: Callable[[int], bool] | None = None, **kw: Any
) -> httpx.Response:
    """Send one hostile request: a 4xx with a JSON ``detail``, within the deadline."""
    response = await asyncio.wait_for(l1.http.request(method, path, **kw), timeout=ANSWER_WITHIN)
    ok = expect(response.status_code) if expect else 400 <= response.status_code < 500
    assert ok, (method, path, kw.get("params"), response.status_code, response.text[:300])
    detail = response.json().get("detail")
    assert isinstance(detail, str) and detail, (method, path, response.text[:300])
    return response


# Characters that hide or reorder what a name shows, and characters no name may hold.
INVISIBLE = ["\u202edog", "d\u200bog", "\ufeffdog"]  # RTL override, zero-width, BOM
FORBIDDEN = ["dog\x00", "dog\nx", "\x1b[31mdog", "x" * 100_000]
# Unusual but harmless in a name; still never a recipe or an input.
ODD = ["../../etc/passwd", "d\u0301og", "\U0001f436"]
HOSTILE = INVISIBLE + FORBIDDEN + ODD


async def test_hostile_run_submissions_are_4xx(l1: Harness) -> None:
    bodies: list[Any] = [
        {"recipe": "dog", "inputs": ["cat"] * 100_000},
        {"recipe": "dog", "inputs": {f"i{n}": "cat" for n in range(100_000)}},
        {"recipe": "dog", "inputs": []},
        {"recipe": 5, "inputs": ["cat"]},
        {"recipe": "dog", "inputs": "cat"},
        {"recipe": "dog", "inputs": [1, 2]},
        {"recipe": "dog", "inputs": [None]},
        {"recipe": "dog", "inputs": [["cat"]]},
        {"recipe": "dog", "inputs": {"": "cat"}},
        {"recipe": None, "inputs": ["cat"]},
        {"recipe": "dog", "inputs": ["cat"], "output_name": 7},
        {"recipe": "dog", "inputs": ["cat"], "params": []},
        {"recipe": "dog", "inputs": ["cat"], "unknown": True},
        {"recipe": "dog", "inputs": ["cat"] * 2},
        {"recipe": "dog", "inputs": ["f" * 64]},
        {"recipe": "dog", "inputs": ["F" * 64]},
        [],
        "dog",
        None,
        12,
        {},
    ]
    bodies += [{"recipe": text, "inputs": ["cat"]} for text in HOSTILE]
    bodies += [{"recipe": "dog", "inputs": [text]} for text in HOSTILE]
    bodies += [{"recipe": "dog", "inputs": ["cat"], "output_name": t} for t in FORBIDDEN]
    for body in bodies:
        await refused(l1, "POST", "/runs", json=body)
    assert (await l1.http.get("/runs")).json()["items"] == []


async def test_output_name_with_a_trailing_newline_is_400(l1: Harness) -> None:
    body = {"recipe": "dog", "inputs": ["cat"], "output_name": "dog\n"}
    await refused(l1, "POST", "/runs", json=body, expect=lambda s: s == 400)


async def test_output_name_with_invisible_characters_is_400(l1: Harness) -> None:
    for text in INVISIBLE:
        body = {"recipe": "dog", "inputs": ["cat"], "output_name": text}
        await refused(l1, "POST", "/runs", json=body, expect=lambda s: s == 400)


async def test_malformed_and_oversized_bodies_are_4xx(l1: Harness) -> None:
    ten_megabytes = b'{"recipe": "dog", "inputs": ["' + b"c" * (10 << 20) + b'"]}'
    await refused(l1, "POST", "/runs", content=ten_megabytes, expect=lambda s: s == 413)
    # (JSON nested past the decoder's depth is tests/test_bad_input.py's.)
    for raw in (b"", b"{", b'{"recipe": "dog",', b"\xff\xfe\x00", b"nul", b'{"a": 1}' * 3):
        await refused(
            l1, "POST", "/runs", content=raw, headers={"Content-Type": "application/json"}
        )
    nul = b'{"recipe": "dog\\u0000", "inputs": ["cat"]}'
    await refused(l1, "POST", "/runs", content=nul, headers={"Content-Type": "application/json"})


async def test_pagination_out_of_range_is_400(l1: Harness) -> None:
    values = ["0", "-1", "1001", "10" * 40, "-" + "9" * 40, "1e4", "abc", "1.5", "0x10"]
    for path in ("/runs", "/cache", "/recipes", "/dead"):
        for value in values:
            await refused(l1, "GET", path, params={"limit": value}, expect=lambda s: s == 400)
        for cursor in ("x" * 600, "\x00", "-1", "not-a-cursor", "9" * 80):
            await refused(
                l1, "GET", path, params={"cursor": cursor}, expect=lambda s: 400 <= s < 500
            )
    for wait in ("-1", "301", "1e309", "nan", "inf"):
        run_id = "a" * 64
        await refused(l1, "GET", f"/runs/{run_id}", params={"wait": wait})
    await refused(l1, "GET", "/runs", params={"status": "exploded"})
    await refused(l1, "GET", "/dead", params={"limit": "-1"}, expect=lambda s: s == 400)


async def test_hostile_path_values_are_4xx(l1: Harness) -> None:
    for text in [*INVISIBLE, *FORBIDDEN[:-1], *ODD, "A" * 64, "g" * 64, "a" * 65, "x" * 5000]:
        quoted = quote(text, safe="")
        for method, path in (
            ("GET", f"/runs/{quoted}"),
            ("POST", f"/runs/{quoted}/cancel"),
            ("DELETE", f"/runs/{quoted}"),
            ("GET", f"/cache/{quoted}"),
            ("GET", f"/cache/{quoted}/meta"),
            ("DELETE", f"/cache/{quoted}"),
            ("GET", f"/recipes/{quoted}"),
        ):
            await refused(l1, method, path)
    for path in ("../../../etc/passwd", "/etc/passwd", "\x00", "~root/.ssh/id_rsa"):
        await refused(l1, "POST", "/cache/import", params={"path": path})


def alias_bomb(depth: int) -> bytes:
    """A small recipe whose YAML aliases expand to ``9 ** depth`` strings when walked."""
    lines = [
        "name: bomb",
        "inputs: [{name: picture}]",
        "nodes:",
        "  - id: src",
        "    type: SOURCE",
        "    config:",
        "      input: picture",
        '      l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    lines += [f"      l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 9)}]" for n in range(1, depth)]
    lines += ["  - {id: grey, type: EFFECT, config: {effect: grayscale}, inputs: [src]}"]
    return "\n".join([*lines, "output: grey"]).encode()


async def test_recipe_alias_bomb_is_refused(l1: Harness) -> None:
    document = alias_bomb(7)
    assert len(document) < 1000
    response = await refused(l1, "POST", "/recipes", content=document)
    assert len(response.content) < 100_000


async def test_dead_letters_of_a_fresh_server_are_an_empty_list(l1: Harness) -> None:
    response = await l1.http.get("/dead")
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_cursor": None}


async def test_server_still_healthy_after_hostile_input(l1: Harness) -> None:
    for body in ({"recipe": "dog", "inputs": ["cat"] * 100_000}, {"recipe": "\x00"}):
        await refused(l1, "POST", "/runs", json=body)
    run = await submit(l1.http, "dog", ["cat"])

    async def done() -> bool:
        response = await l1.http.get(f"/runs/{run['run_id']}")
        return response.json()["status"] == "completed"

    await wait_for(done)
    assert (await l1.http.get("/health")).status_code == 200
