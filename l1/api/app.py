"""The Litestar application factory."""

from __future__ import annotations

from litestar import Litestar
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

import l1
from l1.api.errors import expected_errors
from l1.api.plugin import L1Plugin
from l1.settings import Settings

__all__ = ["create_app", "create_shared_app"]


def create_app(settings: Settings | None = None, *, subscribers: bool = True) -> Litestar:
    """Build the API; ``subscribers`` also runs the event projectors in this process."""
    settings = settings or Settings.from_env()
    return Litestar(
        plugins=[L1Plugin(settings, subscribers=subscribers)],
        # Given here, not by the plugin: Litestar reads this one before plugins run.
        # Checked against Content-Length before any byte is read, then while reading.
        request_max_body_size=settings.max_body_bytes,
        # Unexpected errors are logged with their traceback; expected ones are not.
        logging_config=LoggingConfig(
            log_exceptions="always", disable_stack_trace=expected_errors()
        ),
        openapi_config=OpenAPIConfig(
            title="L1",
            version=l1.__version__,
            description="The rendering server of the Art DAG system.",
            path="/docs",
            render_plugins=[_swagger()],
        ),
    )


def _swagger() -> SwaggerRenderPlugin:
    """Swagger UI from L1's own static files (``l1/api/static/swagger-ui``), so that the
    docs work on a machine with no way out to the internet."""
    base = "/static/swagger-ui"
    return SwaggerRenderPlugin(
        path="/",
        js_url=f"{base}/swagger-ui-bundle.js",
        css_url=f"{base}/swagger-ui.css",
        standalone_preset_js_url=f"{base}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{base}/favicon-32x32.png'>",
    )


def create_shared_app() -> Litestar:
    """The app of one of several API processes sharing a port: settings from the
    environment, and no subscribers (they run in a process of their own)."""
    return create_app(Settings.from_env(), subscribers=False)
