"""The dashboard at ``/ui``: server-rendered pages (Jinja templates), one stylesheet and
one small script, served by L1 itself with everything they load."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from l1.api.ui.pages import Dashboard, DashboardController
from l1.api.ui.thumbs import Thumbnails
from l1.api.ui.views import duration, human_bytes, short_time

if TYPE_CHECKING:
    from litestar import Router

__all__ = ["Dashboard", "DashboardController", "Thumbnails", "static_files", "templates"]

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent.parent / "static"


def _filters(engine: JinjaTemplateEngine) -> None:
    environment = engine.engine
    environment.filters["bytes"] = human_bytes
    environment.filters["when"] = short_time
    environment.filters["as_json"] = _as_json
    environment.globals["duration"] = duration


def _as_json(value: Any, indent: int = 0) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=indent).decode()


def templates() -> TemplateConfig[JinjaTemplateEngine]:
    """The pages' templates, with the filters they use."""
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=_filters)


def static_files() -> Router:
    """``/static``: the dashboard's stylesheet and script, and the API docs' assets."""
    return create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False)
