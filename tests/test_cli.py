"""The ``l1`` command against a running L1.

The CLI's client is synchronous, and the harness serves from the test's event loop,
so each invocation runs in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from click.testing import CliRunner, Result

from l1.cli import cli
from tests.harness import Harness, asset_hashes, upload

# Wide enough that tables never shorten a hash.
ENV = {"COLUMNS": "250", "NO_COLOR": "1"}


async def l1_cli(server: str, *args: str) -> Result:
    """Run ``l1 --server SERVER ARGS...`` in a thread and return its result."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli, ["--server", server, *args], env=ENV)


def succeeded(result: Result) -> str:
    """The output of a command that must have exited 0."""
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result.output


def first_line(output: str) -> str:
    """The first line of ``output`` that is not blank (a progress display may leave one)."""
    return next(line.strip() for line in output.splitlines() if line.strip())


def failed_cleanly(result: Result) -> str:
    """The one ``Error:`` line of a command that must have failed without a traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


async def test_render_asset_sync_prints_the_output_hash(l1: Harness) -> None:
    dog = (await asset_hashes(l1.http))["dog"]
    output = succeeded(await l1_cli(l1.base_url, "render", "dog", "cat", "--sync"))
    assert first_line(output) == dog


async def test_render_without_sync_prints_the_run_id(l1: Harness) -> None:
    output = succeeded(await l1_cli(l1.base_url, "render", "dog", "cat"))
    run_id = output.strip()
    assert (await l1.finished_run(run_id))["status"] == "completed"


async def test_import_and_render_a_local_file(l1: Harness, tmp_path: Path) -> None:
    data = b"a local file for the command line"
    source = tmp_path / "local.bin"
    source.write_bytes(data)
    expected = hashlib.sha3_256(data).hexdigest()

    assert succeeded(await l1_cli(l1.base_url, "import", str(source))).strip() == expected
    rendered = succeeded(await l1_cli(l1.base_url, "render", "identity", str(source), "--sync"))
    assert first_line(rendered) == expected


async def test_runs_run_cache_and_fetch(l1: Harness, tmp_path: Path) -> None:
    data = b"fetch me back"
    content_hash = await upload(l1.http, data)
    submitted = await l1.http.post("/runs", json={"recipe": "identity", "inputs": [content_hash]})
    run_id = submitted.json()["run_id"]
    assert (await l1.finished_run(run_id))["status"] == "completed"

    listed = succeeded(await l1_cli(l1.base_url, "runs"))
    assert run_id[:12] in listed
    assert "completed" in listed

    shown = json.loads(succeeded(await l1_cli(l1.base_url, "run", run_id)))
    assert shown["run_id"] == run_id
    assert shown["output_hash"] == content_hash

    cached = succeeded(await l1_cli(l1.base_url, "cache"))
    assert content_hash in cached

    target = tmp_path / "fetched.bin"
    succeeded(await l1_cli(l1.base_url, "fetch", content_hash, "-o", str(target)))
    assert target.read_bytes() == data


async def test_errors_are_one_line_without_traceback(l1: Harness, tmp_path: Path) -> None:
    unknown = failed_cleanly(await l1_cli(l1.base_url, "render", "no-such-effect", "cat"))
    assert "no-such-effect" in unknown

    bad_hash = failed_cleanly(await l1_cli(l1.base_url, "run", "not-a-run"))
    assert "400" in bad_hash

    missing = hashlib.sha3_256(b"not cached").hexdigest()
    target = tmp_path / "never.bin"
    failed_cleanly(await l1_cli(l1.base_url, "fetch", missing, "-o", str(target)))


async def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    for args in (("runs",), ("render", "dog", "cat", "--sync"), ("cache",)):
        line = failed_cleanly(await l1_cli("http://127.0.0.1:1", *args))
        assert "127.0.0.1:1" in line
