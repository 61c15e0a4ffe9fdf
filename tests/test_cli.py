"""The ``l1`` command against a running L1.

The CLI's client is synchronous, and the harness serves from the test's event loop,
so each invocation runs in a thread. Under the test runner stdout is not a terminal,
so lists come as tab-separated lines with full ids, as a script sees them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from l1.assets import asset_path
from l1.cli import cli
from tests.harness import Harness, asset_hashes, upload
from tests.processes import REPO_ROOT

# Wide enough that tables never shorten a hash.
ENV = {"COLUMNS": "250", "NO_COLOR": "1"}


async def l1_cli(server: str, *args: str) -> Result:
    """Run ``l1 --server SERVER ARGS...`` in a thread and return its result."""
    return await invoke("--server", server, *args)


async def invoke(*args: str) -> Result:
    """Run ``l1 ARGS...`` in a thread and return its result."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli, list(args), env=ENV)


def succeeded(result: Result) -> str:
    """The stdout of a command that must have exited 0."""
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result.stdout


def failed_cleanly(result: Result) -> str:
    """The one ``Error:`` line of a command that must have failed without a traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


async def completed_run(l1: Harness, data: bytes) -> tuple[str, str]:
    """Upload ``data``, render it with ``identity``; the run id and the item's hash."""
    content_hash = await upload(l1.http, data)
    submitted = await l1.http.post("/runs", json={"recipe": "identity", "inputs": [content_hash]})
    run_id = submitted.json()["run_id"]
    assert (await l1.finished_run(run_id))["status"] == "completed"
    return run_id, content_hash


async def test_render_sync_prints_the_run_id_at_once_and_the_hash_alone(l1: Harness) -> None:
    dog = (await asset_hashes(l1.http))["dog"]
    result = await l1_cli(l1.base_url, "render", "dog", "cat", "--sync")
    # Nothing but the hash on stdout: `l1 render … --sync | head -1` is the hash.
    assert succeeded(result) == f"{dog}\n"
    run_line = result.stderr.splitlines()[0]
    assert run_line.startswith("run ")
    run_id = run_line.split()[1]
    assert (await l1.finished_run(run_id))["output_hash"] == dog


async def test_render_without_sync_prints_the_run_id(l1: Harness) -> None:
    output = succeeded(await l1_cli(l1.base_url, "render", "dog", "cat"))
    run_id = output.strip()
    assert (await l1.finished_run(run_id))["status"] == "completed"


async def test_server_and_token_work_after_the_command(l1: Harness) -> None:
    dog = (await asset_hashes(l1.http))["dog"]
    rendered = await invoke("render", "dog", "cat", "--sync", "--server", l1.base_url)
    assert succeeded(rendered) == f"{dog}\n"
    listed = await invoke("runs", "--server", l1.base_url, "--token", "unused", "--json")
    assert dog in {run["output_hash"] for run in json.loads(succeeded(listed))}
    # After the command wins over before it.
    unreachable = await invoke("--server", "http://127.0.0.1:1", "runs", "--server", l1.base_url)
    succeeded(unreachable)


async def test_import_and_render_a_local_file(l1: Harness, tmp_path: Path) -> None:
    data = b"a local file for the command line"
    source = tmp_path / "local.bin"
    source.write_bytes(data)
    expected = hashlib.sha3_256(data).hexdigest()

    assert succeeded(await l1_cli(l1.base_url, "import", str(source))).strip() == expected
    rendered = succeeded(await l1_cli(l1.base_url, "render", "identity", str(source), "--sync"))
    assert rendered.strip() == expected


async def test_a_missing_local_file_says_so(l1: Harness) -> None:
    for args in (("blur", "./missing.png"), ("./missing.yaml", "cat"), ("blur", "-i", "x=a/b")):
        line = failed_cleanly(await l1_cli(l1.base_url, "render", *args))
        missing = next(arg for arg in args if "/" in arg).removeprefix("x=")
        assert line == f"Error: no such file: {missing}"


async def test_lists_for_scripts_carry_full_ids(l1: Harness, tmp_path: Path) -> None:
    run_id, content_hash = await completed_run(l1, b"fetch me back")

    lines = succeeded(await l1_cli(l1.base_url, "runs")).splitlines()
    assert lines[0].split("\t") == [
        run_id,
        "identity",
        "completed",
        lines[0].split("\t")[3],
        content_hash,
    ]
    cached = succeeded(await l1_cli(l1.base_url, "cache")).splitlines()
    assert content_hash in {line.split("\t")[0] for line in cached}


async def test_json_on_every_list(l1: Harness) -> None:
    run_id, content_hash = await completed_run(l1, b"listed as json")
    runs = json.loads(succeeded(await l1_cli(l1.base_url, "runs", "--json")))
    assert [run["run_id"] for run in runs] == [run_id]
    cached = json.loads(succeeded(await l1_cli(l1.base_url, "cache", "--json")))
    assert content_hash in {item["content_hash"] for item in cached}
    assert json.loads(succeeded(await l1_cli(l1.base_url, "dead", "--json"))) == []
    recipes = json.loads(succeeded(await l1_cli(l1.base_url, "recipes", "--json")))
    assert any(r["name"] == "dog" and r["kind"] == "effect" for r in recipes)
    effects = json.loads(succeeded(await l1_cli(l1.base_url, "effects", "--json")))
    blur = next(effect for effect in effects if effect["name"] == "blur")
    assert "radius" in json.dumps(blur["params"])
    one = json.loads(succeeded(await l1_cli(l1.base_url, "effects", "blur", "--json")))
    assert one == blur


async def test_prefixes_and_asset_names_where_ids_are_taken(l1: Harness, tmp_path: Path) -> None:
    data = b"found by a prefix " * 3
    run_id, content_hash = await completed_run(l1, data)

    shown = json.loads(succeeded(await l1_cli(l1.base_url, "run", run_id[:12])))
    assert shown["run_id"] == run_id
    assert shown["output_hash"] == content_hash
    refused = failed_cleanly(await l1_cli(l1.base_url, "cancel", run_id[:8]))
    assert f"run {run_id} already finished" in refused

    target = tmp_path / "fetched.bin"
    succeeded(await l1_cli(l1.base_url, "fetch", content_hash[:10], "-o", str(target)))
    assert target.read_bytes() == data
    cat = tmp_path / "cat.png"
    succeeded(await l1_cli(l1.base_url, "fetch", "cat", "-o", str(cat)))
    assert cat.read_bytes() == asset_path("cat").read_bytes()

    orphan = await upload(l1.http, b"nothing holds me")
    assert succeeded(await l1_cli(l1.base_url, "rm", orphan[:8])) == f"deleted {orphan}\n"
    assert (await l1.http.get(f"/cache/{orphan}")).status_code == 404
    too_short = failed_cleanly(await l1_cli(l1.base_url, "rm", "abc"))
    assert "400" in too_short and "at least 4" in too_short


async def test_effects_show_parameters_types_ranges_and_defaults(l1: Harness) -> None:
    listed = succeeded(await invoke("effects", "--server", l1.base_url))
    rows = [line.split("\t") for line in listed.splitlines()]
    assert ["blur", "radius", "number", "0 to 250", "2.0"] in rows
    assert ["segment", "duration", "number or null", "> 0, <= 86400", "unset"] in rows
    assert ["identity", "-", "-", "-", "-"] in rows
    assert ["blur", "encoding.crf", "integer", "0 to 51", "23"] in rows

    one = succeeded(await l1_cli(l1.base_url, "effects", "sepia")).splitlines()
    assert all(line.startswith("sepia\t") for line in one)
    assert ["sepia", "strength", "number", "0 to 1", "1.0", "-"] in [r.split("\t") for r in one]
    unknown = failed_cleanly(await l1_cli(l1.base_url, "effects", "no-such-effect"))
    assert "404" in unknown and "no-such-effect" in unknown


async def test_nested_effect_params_as_dotted_keys(l1: Harness) -> None:
    dotted = await l1_cli(l1.base_url, "render", "blur", "clip", "-p", "encoding.crf=40")
    whole = await l1_cli(l1.base_url, "render", "blur", "clip", "-p", 'encoding={"crf": 40}')
    assert succeeded(dotted) == succeeded(whole)  # the same run
    wrong = failed_cleanly(
        await l1_cli(l1.base_url, "render", "blur", "clip", "-p", "encoding.nope=1")
    )
    assert "422" in wrong and "nope" in wrong


async def test_ctrl_c_during_sync_leaves_the_run_and_says_how_to_cancel_it(l1: Harness) -> None:
    await l1.worker.stop()  # nothing renders: the run stays pending
    content_hash = await upload(l1.http, b"waited on, then left to render")
    command = [sys.executable, "-m", "l1", "render", "identity", content_hash, "--sync"]
    process = await asyncio.create_subprocess_exec(
        *command,
        "--server",
        l1.base_url,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        accepted = await asyncio.wait_for(process.stderr.readline(), timeout=30)
        words = accepted.decode().split()
        assert words[0] == "run" and words[2] == "pending", accepted
        run_id = words[1]
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 130
    assert stdout == b""
    expected = (
        f"run {run_id} keeps rendering; cancel it with: l1 cancel {run_id} --server {l1.base_url}"
    )
    assert stderr.decode().strip().splitlines()[-1] == expected
    assert "Aborted" not in stderr.decode()
    assert (await l1.http.get(f"/runs/{run_id}")).json()["status"] == "pending"


async def test_errors_are_one_line_without_traceback(l1: Harness, tmp_path: Path) -> None:
    unknown = failed_cleanly(await l1_cli(l1.base_url, "render", "no-such-effect", "cat"))
    assert "no-such-effect" in unknown

    bad_hash = failed_cleanly(await l1_cli(l1.base_url, "run", "not-a-run"))
    assert "400" in bad_hash

    missing = hashlib.sha3_256(b"not cached").hexdigest()
    target = tmp_path / "never.bin"
    failed_cleanly(await l1_cli(l1.base_url, "fetch", missing, "-o", str(target)))
    assert not target.exists()


async def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    for args in (("runs",), ("render", "dog", "cat", "--sync"), ("cache",), ("effects",)):
        line = failed_cleanly(await l1_cli("http://127.0.0.1:1", *args))
        assert "127.0.0.1:1" in line
