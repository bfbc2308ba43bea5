"""GET /openapi.json (OpenAPI 3.1) and GET /docs (a readable page), written from the same
`Operation`s and pydantic models that route and validate requests."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from flexvoice import __version__
from flexvoice.api.framework import Resource
from flexvoice.api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, TYPE_PREFIX

docs_routes = web.RouteTableDef()

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


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "RFC 9457 problem details",
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
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {op.consumes[0]: {"schema": refs[(op.body, "validation")]}},
            }
        elif op.consumes[0] != "application/json":
            # A text document (a YAML flow): the server validates it, so any text is accepted
            # here and refused with a positioned 422.
            operation["requestBody"] = {
                "required": True,
                "content": {ct: {"schema": {"type": "string"}} for ct in op.consumes},
            }
        ok: dict[str, Any] = {"description": op.summary}
        if op.response is not None:
            ok["content"] = {op.produces: {"schema": refs[(op.response, "serialization")]}}
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
            "description": "Programmable voice: calls, numbers, flows, recordings and usage. "
            "Errors are RFC 9457 problem documents. See /docs.",
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
    from flexvoice.api.app import RESOURCES

    cached = getattr(_spec, "cache", None)
    if cached is None:
        cached = build_spec(RESOURCES)
        _spec.cache = cached  # type: ignore[attr-defined]
    return cached


@docs_routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(_spec(request))


@docs_routes.get("/docs")
async def docs_page(request: web.Request) -> web.Response:
    spec = _spec(request)
    e = html.escape
    out = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        "<title>FlexVoice REST API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;"
        "padding:0 1em}code,pre{background:#f4f4f4;padding:0 .2em}pre{padding:.5em;"
        "overflow:auto}h3{margin-bottom:.2em}.m{font-weight:bold;display:inline-block;"
        "width:4.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:.2em .5em;text-align:left}</style>",
        "<h1>FlexVoice REST API</h1>",
        f"<p>Version {e(spec['info']['version'])}. Machine-readable: "
        "<a href=/openapi.json>/openapi.json</a> (OpenAPI 3.1). Authenticate with "
        "<code>Authorization: Bearer &lt;key&gt;</code>; create keys with "
        "<code>flexvoice keys create --account A --role developer</code>.</p>",
    ]
    for tag in spec["tags"]:
        out.append(f"<h2 id={e(tag['name'])}>{e(tag['name'])}</h2><p>{e(tag['description'])}</p>")
        for path, item in spec["paths"].items():
            for method, op in item.items():
                if op["tags"] != [tag["name"]]:
                    continue
                out.append(
                    f"<h3><span class=m>{method.upper()}</span><code>{e(path)}</code></h3>"
                    f"<p><b>{e(op['summary'])}</b>. {e(op['description'])}</p>"
                )
                params = [p for p in op["parameters"] if p["in"] != "path"]
                if params:
                    out.append(
                        "<p>Parameters: "
                        + ", ".join(f"<code>{e(p['name'])}</code> ({p['in']})" for p in params)
                        + "</p>"
                    )
                body = op.get("requestBody")
                ref = next(iter(body["content"].values()))["schema"].get("$ref") if body else None
                if ref:
                    name = ref.rsplit("/", 1)[-1]
                    schema = spec["components"]["schemas"][name]
                    fields = ", ".join(f"<code>{e(k)}</code>" for k in schema.get("properties", {}))
                    out.append(f"<p>Body (JSON, unknown fields rejected): {fields}</p>")
                elif body:
                    types = ", ".join(f"<code>{e(t)}</code>" for t in body["content"])
                    out.append(f"<p>Body: a document sent as {types}</p>")
                codes = ", ".join(sorted(op["responses"]))
                out.append(f"<p>Answers: {e(codes)}</p>")
    out.append("<h2 id=problems>Problem types</h2><table><tr><th>type<th>status<th>title")
    for slug, (status, title) in PROBLEM_TYPES.items():
        out.append(
            f"<tr id=problem-{e(slug)}><td><code>{e(TYPE_PREFIX + slug)}</code><td>{status}"
            f"<td>{e(title)}"
        )
    out.append("</table>")
    example = json.dumps(
        {
            "type": TYPE_PREFIX + "unknown-field",
            "title": PROBLEM_TYPES["unknown-field"][1],
            "status": 422,
            "detail": "colour: not a field of this request; remove it",
            "field": "colour",
        },
        indent=2,
    )
    out.append(f"<p>Example:</p><pre>{e(example)}</pre></html>")
    return web.Response(text="\n".join(out), content_type="text/html")
