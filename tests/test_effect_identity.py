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
    # Version 3 of every effect that writes video: outputs follow the input's format,
    # and every per-frame effect filters video with libavfilter.
    "flip": "f3fa943173670ef4cc065d65c5e1c072f5f9114bb65a6bae5b856584047b41e5",
    "grayscale": "6847824a7e0fe5af216c87ecd0c5c0e7ecba0796c38a9b9d91cd37d5704fbb3d",
    "blur": "d568d2a8e74fbabf882926f14bae77d6e8db0ad160b37c61b728aa98265f89f2",
    "sepia": "4d457ffc690240d9666e4016e71306663830382e48e24f5b91d60a108f569512",
    "segment": "acc5a3deba3b253b8c757401137fe2ea34a5f4ab00d455ca50c66e438ec4fdf5",
    "mux": "dca02d873e9359e8a3e7916c1d32461881021bf31292db6f1648c497c5193f3f",
    "blend": "52fb05ff4a45c0112b1e5043ed5057d11ee9b7d44616366d0ab73d2f5be125e0",
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
