"""OpenAPI descriptions of the request bodies Litestar cannot see: handlers that read
the raw body (uploads, recipe documents) rather than take a ``data`` parameter."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

__all__ = ["RecipeBody", "UploadBody"]

_BINARY = Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]


@dataclass
class UploadBody(Operation):
    """``POST /cache``: the file's bytes, raw or as the one file of a multipart form."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="The item's bytes (any media type), or a form with one file.",
            content={
                "application/octet-stream": OpenAPIMediaType(schema=_BINARY),
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties={"file": _BINARY},
                        required=["file"],
                    )
                ),
            },
        )


@dataclass
class RecipeBody(Operation):
    """``POST /recipes``: a recipe document in YAML (or JSON)."""

    def __post_init__(self) -> None:
        document = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
        self.request_body = RequestBody(
            required=True,
            description="The recipe: name, inputs, nodes and output (see the README).",
            content={"application/yaml": document, "application/json": document},
        )
