"""The JSON Schema of flow files, generated from the verb models the runtime uses.

Published at flows/schema.json (a test keeps it current); editors that speak YAML language
server read it from the `# yaml-language-server: $schema=schema.json` line of a flow.
"""

from __future__ import annotations

import json
from typing import Any

from flexvoice.flows.model import FlowHeader
from flexvoice.flows.verbs import VERBS

SCHEMA_ID = "https://flexvoice.dev/schemas/flow.json"

# Shorthands `coerce` accepts, e.g. `goto: menu`, `hangup:` with nothing.
SHORTHANDS: dict[str, list[dict[str, Any]]] = {
    "answer": [{"type": "null"}],
    "hangup": [{"type": "null"}],
    "goto": [{"type": "string", "description": "the step to go to"}],
    "play": [
        {"type": "string", "description": "a prompt name"},
        {"type": "array", "items": {"type": "string"}},
    ],
    "redirect": [{"type": "string", "description": "E.164 number or SIP URI"}],
}


def flow_schema() -> dict[str, Any]:
    template = "#/$defs/{model}"
    schema = FlowHeader.model_json_schema(ref_template=template)
    defs: dict[str, Any] = schema.pop("$defs", {})
    variants = []
    for name, cls in VERBS.items():
        verb_schema = cls.model_json_schema(ref_template=template)
        defs.update(verb_schema.pop("$defs", {}))
        defs[cls.__name__] = verb_schema
        ref: dict[str, Any] = {"$ref": f"#/$defs/{cls.__name__}"}
        body = {"anyOf": [ref, *SHORTHANDS[name]]} if name in SHORTHANDS else ref
        variants.append(
            {
                "title": name,
                "type": "object",
                "properties": {name: body},
                "required": [name],
                "additionalProperties": False,
            }
        )
    schema["properties"]["steps"] = {
        "type": "object",
        "description": "step name to a mapping with exactly one verb",
        "minProperties": 1,
        "propertyNames": {"pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"},
        "additionalProperties": {"oneOf": variants},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "FlexVoice call flow",
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    return json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n"
