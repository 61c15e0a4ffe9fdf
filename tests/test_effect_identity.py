"""An effect's content hash: its name, its version and the source of its own render
code, so that moving code around never changes it and a version bump always does."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from l1.effects import Effect, default_effects
from l1.effects.identity import effect_hash, render_source

# Pinned: a change here means cached renders and run ids of these effects change. If
# that is meant (the output changed), bump the effect's version and pin the new hash.
PINNED = {
    "identity": "d829014922dfbed0d139d253e6c856d29ff6cba1cd2c031b2df2584260deaddb",
    # Version 2 of every effect that writes video: libx264 frame threads, and the
    # per-frame effects libavfilter can do filtered in YUV.
    "flip": "78448515c8c345fb481cd13795210b42664efa5f89c72b6fa323a89e2c96afeb",
    "grayscale": "13e75a5587d272df13fd6dba8120c1dc58fdcfd620cb0d41c453af2d0430a521",
    "blur": "1ae8781b00b823f69db265e7f7252cb2dedb23da15886a76b1b1c0e442d6e809",
    "sepia": "3baa41c3d91e8ffa794a143bc35e8d48604ffdd49b4e61c72b3ac174bdcb837a",
    "segment": "8897e3326b4c40f5173bc19bd879837fb0cf84246cd69e04f6c43db9746c89c3",
    "mux": "6d53f0c034a5eb10dc1fb50b1e8c45a9bc2129f9e007a605a10de57cc19ca99e",
    "blend": "7dd7ef701ec9bcb176474c935a4720d8ed6e2b493e3fe71448ccb920546cfd6e",
}

RENDER = '''
def render(inputs, workdir, params, context):
    """Copy the first input."""
    return helper(inputs[0])
'''


@pytest.mark.parametrize("name", sorted(PINNED))
def test_shipped_effects_keep_their_pinned_hashes(name: str) -> None:
    assert default_effects().get(name).content_hash == PINNED[name]


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))


def write(root: Path, module: str, text: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(text))


def test_moving_render_code_between_modules_keeps_the_hash(modules: Path) -> None:
    write(modules, "first_home", "import os\n\ndef helper(p):\n    return p\n" + RENDER)
    write(modules, "second_home", "HELPERS = 1\n\n\ndef helper(p):\n    return str(p)\n" + RENDER)
    indented = "class Box:\n" + textwrap.indent(RENDER, "    ")
    write(modules, "third_home", indented)
    hashes = {
        effect_hash("copy", "1", "first_home:render"),
        effect_hash("copy", "1", "second_home:render"),
        effect_hash("copy", "1", "third_home:Box.render"),
    }
    assert len(hashes) == 1


def test_a_change_to_the_render_code_or_the_version_changes_the_hash(modules: Path) -> None:
    write(modules, "before", RENDER)
    write(modules, "after", RENDER.replace("inputs[0]", "inputs[-1]"))
    original = effect_hash("copy", "1", "before:render")
    assert effect_hash("copy", "1", "after:render") != original
    assert effect_hash("copy", "2", "before:render") != original
    assert effect_hash("paste", "1", "before:render") != original


def test_the_source_is_read_without_importing_the_module(modules: Path) -> None:
    write(modules, "unimportable", "import no_such_module_anywhere\n" + RENDER)
    assert render_source("unimportable:render").startswith("def render(")
    assert "unimportable" not in sys.modules


def test_an_effect_names_code_that_exists(modules: Path) -> None:
    write(modules, "lonely", RENDER)
    with pytest.raises(ValueError, match="no function or class named 'missing'"):
        Effect(name="x", version="1", description="", render="lonely:missing")
    with pytest.raises(ValueError, match=r"'package\.module:name'"):
        Effect(name="x", version="1", description="", render="lonely.render")
