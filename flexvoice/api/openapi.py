"""GET /openapi.json (OpenAPI 3.1) and GET /docs, written from the same `Operation`s and
pydantic models that route and validate requests, with an example per call operation
(flexvoice.api.examples) and the problem types.

/docs is Swagger UI, served by the node itself from the files the PyPI package
`swagger-ui-py` ships (no CDN: the page works on a node without internet access)."""

from __future__ import annotations

import html
import importlib.util
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from flexvoice import __version__
from flexvoice.api.examples import EXAMPLES, PROBLEM_EXAMPLE
from flexvoice.api.framework import Resource
from flexvoice.api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, TYPE_PREFIX

docs_routes = web.RouteTableDef()
SPEC: web.AppKey[dict[str, Any]] = web.AppKey("openapi_spec")  # set by install_routes


def _swagger_ui_files() -> Path:
    """The package's static folder, found without importing it (its Python half, for other
    web frameworks, would cost every node start an import of Jinja2)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise RuntimeError("swagger-ui-py is not installed: run ./run to install the project")
    return Path(spec.origin).parent / "static"


SWAGGER_UI_FILES = _swagger_ui_files()

_PARAM = re.compile(r"{([a-zA-Z0-9_]+)}")

PATH_PARAM_DOCS = {
    "call_id": "the call's id (CA...)",
    "e164": "the number in E.164, e.g. +3225551001 (URL-encode the + as %2B or leave it)",
    "recording_id": "the recording's id (RE...)",
    "name": "the flow's name",
}

STATUS_TEXT = {
    400: "Malformed request (JSON, query string)",
    401: "No valid API key",
    403: "The key's role may not do this, or the account is suspended",
    404: "No such resource in this account",
    409: "Conflict with the resource's state or Idempotency-Key reused",
    413: "Body over 1 MiB",
    415: "Body is not JSON",
    422: "A field is missing, unknown or invalid",
    429: "Rate limited or locked out after failed authentications (see Retry-After)",
    503: "A part of the node this needs is not running",
}


def _problem_table() -> str:
    rows = "\n".join(
        f"| `{TYPE_PREFIX}{slug}` | {status} | {title} |"
        for slug, (status, title) in PROBLEM_TYPES.items()
    )
    return "| type | status | title |\n| --- | --- | --- |\n" + rows


_DESCRIPTION = (
    "Programmable voice: calls, numbers, flows, recordings and usage. Authenticate with "
    "`Authorization: Bearer <key>` (`flexvoice keys create --account A --role developer`).\n\n"
    "**A call is a tree.** The call placed over REST (or an inbound one) is the first leg; "
    "every phone its flow dials is a leg of its own: a call resource with `parent_call_id`, "
    "listed in the parent's `legs`. Whatever ends the call ends every leg, and `ended_by` "
    "says who: `caller`, `callee`, `api`, `flow`, `worker_lost`, `node_shutdown` or "
    "`node_lost` (the node died with the call up; closed and billed to its last heartbeat "
    "when the node started again). The "
    "parent's `price_eur` is its own plus its legs' (`price_breakdown`).\n\n"
    "**Errors** are RFC 9457 problem documents (`application/problem+json`) naming the "
    "field at fault. Their types:\n\n" + _problem_table()
)


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "RFC 9457 problem details",
        "examples": [PROBLEM_EXAMPLE],
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {
                "type": "string",
                "enum": [TYPE_PREFIX + slug for slug in PROBLEM_TYPES],
                "description": "stable identifier of the kind of problem",
            },
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string", "description": "what is wrong and how to fix it"},
            "instance": {"type": "string"},
            "field": {"type": "string", "description": "the request field at fault"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "field": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                },
            },
        },
    }


def build_spec(resources: list[Resource]) -> dict[str, Any]:
    ops = [op for r in resources for op in r.operations]
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in ops:
        for model in (op.body, op.query):
            if model is not None and (model, "validation") not in wanted:
                wanted.append((model, "validation"))
        if op.response is not None and (op.response, "serialization") not in wanted:
            wanted.append((op.response, "serialization"))
    refs, top = models_json_schema(wanted, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["Problem"] = _problem_schema()

    paths: dict[str, Any] = {}
    for op in ops:
        path = "/v1" + op.path
        item = paths.setdefault(path, {})
        params: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
                "description": PATH_PARAM_DOCS.get(name, name),
            }
            for name in _PARAM.findall(op.path)
        ]
        if op.query is not None:
            qs = op.query.model_json_schema(mode="validation")
            required = set(qs.get("required", []))
            for name, prop in qs.get("properties", {}).items():
                params.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in required,
                        "schema": prop,
                        **({"description": prop["description"]} if "description" in prop else {}),
                    }
                )
        roles = ", ".join(sorted(op.roles))
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "description": (op.description + f"\n\nRoles: {roles}.").strip(),
            "tags": [op.tag],
            "parameters": params,
            "responses": {},
            "x-roles": sorted(op.roles),
        }
        if op.idempotent:
            params.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    "description": "same key + same body within 24 h: the first answer is "
                    "replayed and nothing happens twice; another body: 409",
                }
            )
        example = EXAMPLES.get(f"{op.method} {op.path}", {})
        if op.body is not None:
            media: dict[str, Any] = {"schema": refs[(op.body, "validation")]}
            if "request" in example:
                media["example"] = example["request"]
            operation["requestBody"] = {"required": True, "content": {op.consumes[0]: media}}
        elif op.consumes[0] != "application/json":
            # A text document (a YAML flow): the server validates it, so any text is accepted
            # here and refused with a positioned 422.
            operation["requestBody"] = {
                "required": True,
                "content": {ct: {"schema": {"type": "string"}} for ct in op.consumes},
            }
        ok: dict[str, Any] = {"description": op.summary}
        if op.response is not None:
            media = {"schema": refs[(op.response, "serialization")]}
            if "response" in example:
                media["example"] = example["response"]
            ok["content"] = {op.produces: media}
        elif op.status != 204:
            binary = {"schema": {"type": "string", "format": "binary"}}
            ok["content"] = {ct: binary for ct in (op.produces, *op.also_produces)}
        operation["responses"][str(op.status)] = ok
        problem = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for code in sorted({*op.errors, 401, 403, 429}):
            operation["responses"][str(code)] = {
                "description": STATUS_TEXT.get(code, "error"),
                "content": problem,
            }
        if op.status == 206 or op.produces == "audio/wav":
            operation["responses"]["206"] = {
                "description": "partial content (Range request)",
                "content": {op.produces: {"schema": {"type": "string", "format": "binary"}}},
            }
        item[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "FlexVoice REST API",
            "version": __version__,
            "description": _DESCRIPTION,
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": r.tag, "description": r.description} for r in resources],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "flexvoice keys create --account A --role developer",
                }
            },
        },
    }


def _spec(request: web.Request) -> dict[str, Any]:
    return request.config_dict[SPEC]


@docs_routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(_spec(request))


# Swagger UI's own page, pointed at this node's document; its files come from the package.
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>FlexVoice REST API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
<noscript>
<h1>FlexVoice REST API</h1>
<p>This page needs JavaScript; the API is described in <a href="/openapi.json">/openapi.json</a>
(OpenAPI 3.1). Problem types: {problems}</p>
</noscript>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  defaultModelsExpandDepth: 1,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout"
}});
</script>
</body>
</html>
"""


@docs_routes.get("/docs")
async def docs_page(request: web.Request) -> web.Response:
    problems = ", ".join(html.escape(TYPE_PREFIX + slug) for slug in PROBLEM_TYPES)
    return web.Response(text=_PAGE.format(problems=problems), content_type="text/html")


docs_routes.static("/docs/static", SWAGGER_UI_FILES)
