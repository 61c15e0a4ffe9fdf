"""What L1's OpenAPI document says that Litestar cannot infer from the handlers.

- :func:`errors`: the error answers of an operation, each with the one error body
  (:class:`l1.api.errors.ErrorBody`); every operation gets 400.
- The request bodies handlers read raw (uploads, recipe documents), and the JSON bodies
  of runs and recipes as msgspec's own schema of them: the rules its decoder applies.
- Downloads: any media type, ranges and conditional requests.
- The patterns of the ids and names a path takes. For the schema only: the lookups
  (:mod:`l1.api.lookups`) enforce them, with messages that say what to give instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)

from l1.api.errors import ErrorBody
from l1.api.lookups import MIN_PREFIX
from l1.assets import known_assets
from l1.runs.recipes import Recipe
from l1.schemas import RunSubmission

__all__ = [
    "DEPENDENCIES",
    "ITEM_PATTERN",
    "ITEM_RULES",
    "JSON_BODY",
    "LOOKUP",
    "RECIPE_NAME_RULES",
    "REDIS",
    "RUN_ID_PATTERN",
    "RUN_ID_RULES",
    "WRITE",
    "DescribeItem",
    "DownloadItem",
    "RecipeBody",
    "RunBody",
    "UploadBody",
    "errors",
]

# What each status means, whichever operation answers it.
MEANING: Final[dict[int, str]] = {
    400: "Malformed: a parameter, the body, a path segment or the Host header",
    401: "A bearer token is required (the server has L1_API_TOKENS set)",
    403: "Refused: a token the server does not accept, a cross-site request, or a path "
    "outside the import roots",
    404: "Nothing by that name",
    409: "Refused by a rule or by the state of what it names, or a prefix that names several",
    413: "The body is larger than the server's limit",
    415: "The body's Content-Type is not one this operation takes",
    416: "The range lies outside the item",
    422: "Well formed, but it cannot be acted on (an unknown recipe, a missing input)",
    502: "A dependency answered with an error (JetStream, L2)",
    503: "A dependency (NATS, Redis, L2) cannot be reached; try again when it is back",
    507: "Not enough storage for the item",
}

# Groups of answers, by what an operation does.
WRITE: Final = (401, 403)  # a mutating request: the token guard and the cross-site check
LOOKUP: Final = (404, 409)  # an id prefix that names nothing, or several
JSON_BODY: Final = (413, 415, 422)  # a JSON body: too large, not JSON, or not actionable
REDIS: Final = (503,)  # reads Redis only
DEPENDENCIES: Final = (502, 503)  # NATS or JetStream (or L2) on the way

# A full id, or a unique prefix of one (``l1.api.lookups``).
RUN_ID_PATTERN: Final = rf"^[0-9a-f]{{{MIN_PREFIX},64}}$"
# ... or, for an item, the name of an asset.
_ASSETS = sorted(known_assets())
ITEM_PATTERN: Final = rf"^([0-9a-f]{{{MIN_PREFIX},64}}|{'|'.join(_ASSETS)})$"
# The ``schema_extra`` of the path parameters naming a run, an item, a recipe.
RUN_ID_RULES: Final = {"pattern": RUN_ID_PATTERN, "minLength": MIN_PREFIX, "maxLength": 64}
ITEM_RULES: Final = {
    "pattern": ITEM_PATTERN,
    "minLength": min(MIN_PREFIX, *map(len, _ASSETS)),
    "maxLength": 64,
}
RECIPE_NAME_RULES: Final = {
    "pattern": msgspec.json.schema(Recipe)["$defs"]["Recipe"]["properties"]["name"]["pattern"]
}


def errors(*codes: int | Iterable[int]) -> dict[int, ResponseSpec]:
    """The ``responses=`` of an operation's errors: 400 and ``codes`` (numbers or
    groups of them), each with :class:`ErrorBody` and what the status means."""
    wanted = {400}
    for code in codes:
        wanted.update([code] if isinstance(code, int) else code)
    return {
        code: ResponseSpec(
            data_container=ErrorBody,
            generate_examples=False,
            description=MEANING[code],
        )
        for code in sorted(wanted)
    }


_BINARY = Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]
# An item is served in its own media type: any bytes at all.
_ANY_BYTES = {"*/*": OpenAPIMediaType(schema=Schema(description="The item's bytes"))}
_STRING = Schema(type=OpenAPIType.STRING)


@dataclass
class UploadBody(Operation):
    """``POST /cache``: the file's bytes, raw or as the one file of a multipart form."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            # An empty body is the empty item, which is as storable as any other.
            required=False,
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
    """``POST /recipes``: a recipe document in YAML, or in JSON (whose form msgspec's
    schema of :class:`Recipe` gives; YAML text has the same form)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="The recipe: name, inputs, nodes and output (see the README).",
            content={
                "application/yaml": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
                "application/json": OpenAPIMediaType(schema=exact_schema(Recipe)),
            },
        )


@dataclass
class RunBody(Operation):
    """``POST /runs``: the submission as msgspec's own JSON Schema of it, so that the
    document holds every rule the decoder applies (Litestar's drops those inside unions:
    the inputs' count and form, unknown fields)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="The recipe (or effect) to run and its inputs.",
            content={"application/json": OpenAPIMediaType(schema=exact_schema(RunSubmission))},
        )


_ETAG = OpenAPIHeader(schema=_STRING, description="The item's content hash, quoted")
_ITEM_HEADERS: dict[str, OpenAPIHeader | Reference] = {
    "ETag": _ETAG,
    "Accept-Ranges": OpenAPIHeader(schema=_STRING, description="`bytes`"),
    "X-Content-Type-Options": OpenAPIHeader(schema=_STRING, description="`nosniff`"),
}


@dataclass
class DownloadItem(Operation):
    """``GET /cache/{content_hash}``: the bytes in the item's own media type, one range
    of them (206), or nothing when the client's copy is current (304)."""

    def __post_init__(self) -> None:
        self.parameters = [
            *(self.parameters or []),
            Parameter(
                name="Range",
                param_in="header",  # type: ignore[arg-type]
                required=False,
                schema=_STRING,
                description="One range, `bytes=first-last` or `bytes=-suffix`; or the whole item",
            ),
            Parameter(
                name="If-None-Match",
                param_in="header",  # type: ignore[arg-type]
                required=False,
                schema=_STRING,
                description="The ETag of a copy the client holds: 304 when it is this item",
            ),
        ]
        responses = self.responses or {}
        responses["200"] = OpenAPIResponse(
            description="The whole item", content=_ANY_BYTES, headers=_ITEM_HEADERS
        )
        responses["206"] = OpenAPIResponse(
            description="One range of the item",
            content=_ANY_BYTES,
            headers={
                **_ITEM_HEADERS,
                "Content-Range": OpenAPIHeader(
                    schema=_STRING, description="`bytes first-last/size`"
                ),
            },
        )
        responses["304"] = OpenAPIResponse(
            description="The client's copy is this item", headers={"ETag": _ETAG}
        )
        responses["416"] = OpenAPIResponse(
            description=f"{MEANING[416]}: no body",
            headers={"Content-Range": OpenAPIHeader(schema=_STRING, description="`bytes */size`")},
        )
        self.responses = dict(sorted(responses.items()))


@dataclass
class DescribeItem(Operation):
    """``HEAD /cache/{content_hash}``: a download's headers, without a body."""

    def __post_init__(self) -> None:
        responses = self.responses or {}
        responses["200"] = OpenAPIResponse(
            description="The headers a download would have (Content-Type, Content-Length)",
            headers=_ITEM_HEADERS,
        )
        self.responses = dict(sorted(responses.items()))


def exact_schema(struct: type[msgspec.Struct]) -> Schema:
    """``struct``'s JSON Schema as msgspec writes it (the rules its decoder applies),
    inlined, as an OpenAPI schema object."""
    _, components = msgspec.json.schema_components([struct])
    return _to_schema(components[struct.__name__], components)


# JSON Schema keywords whose values are schemas, or lists or maps of them.
_ONE = {"items", "additionalProperties", "propertyNames", "not"}
_LIST = {"anyOf", "oneOf", "allOf", "prefixItems"}
_MAP = {"properties", "$defs"}


def _to_schema(node: dict[str, Any], components: dict[str, Any]) -> Schema:
    if "$ref" in node:  # msgspec's refs read "#/$defs/Name"
        return _to_schema(components[node["$ref"].rsplit("/", 1)[-1]], components)
    aliases = Schema.field_aliases()
    fields: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            value = (
                [OpenAPIType(t) for t in value] if isinstance(value, list) else OpenAPIType(value)
            )
        elif key in _ONE and isinstance(value, dict):
            value = _to_schema(value, components)
        elif key in _LIST:
            value = [_to_schema(v, components) for v in value]
        elif key in _MAP:
            value = {k: _to_schema(v, components) for k, v in value.items()}
        fields[aliases.get(key, key)] = value
    return Schema(**fields)
