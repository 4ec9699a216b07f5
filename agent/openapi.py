"""GET /api/v1/openapi.json: the events API described as OpenAPI 3.1, built from events.SCHEMA.

Built from the same table the validator uses, so the description cannot drift
from what the agent accepts.
"""

from __future__ import annotations

from typing import Any

from totem_agent import __version__
from totem_agent.events import MAX_ID_LENGTH, MAX_LABEL_LENGTH, SCHEMA

_LABEL = {"type": "string", "minLength": 1, "maxLength": MAX_LABEL_LENGTH,
          # Cc spelled as ranges: \p{Cc} is not understood by every regex engine (Python's
          # re, and so schemathesis, refuse it).
          "pattern": '^[^"\\\\\\u0000-\\u001f\\u007f-\\u009f]+$'}
_KINDS: dict[str, dict[str, Any]] = {
    "label": _LABEL,
    "number": {"type": "number", "minimum": 0, "maximum": 1e15},
    "count": {"type": "integer", "minimum": 0},
}
_TIMESTAMP = {"description": "When it happened: Unix seconds, or RFC 3339 with a zone. "
                             "Bounded by [events] max_future_skew and max_age.",
              "oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH,
       "description": "Idempotency key: an event whose id was already seen is acknowledged "
                      "and not counted again."}


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    # The validator reads null as "not given" for every optional field (found by
    # schemathesis: the description used to refuse what the agent accepts).
    return {"anyOf": [schema, {"type": "null"}]}


def _event_schema(kind: str) -> dict[str, Any]:
    fields = SCHEMA[kind]
    properties: dict[str, Any] = {"type": {"const": kind}, "id": _or_null(_ID),
                                  "timestamp": _or_null(_TIMESTAMP)}
    properties.update({name: _KINDS[spec.kind] if spec.required else _or_null(_KINDS[spec.kind])
                       for name, spec in fields.items()})
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": ["type", *[n for n, s in fields.items() if s.required]]}


def _response(description: str, schema_ref: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def openapi() -> dict[str, Any]:
    schemas: dict[str, Any] = {f"{kind}": _event_schema(kind) for kind in SCHEMA}
    schemas["Event"] = {"oneOf": [{"$ref": f"#/components/schemas/{k}"} for k in SCHEMA],
                        "discriminator": {"propertyName": "type"}}
    schemas["Error"] = {"type": "object", "required": ["error", "field", "reason"],
                        "properties": {"error": {"type": "string"},
                                       "field": {"type": ["string", "null"],
                                                 "examples": ["events[2].amount"]},
                                       "reason": {"type": "string"}}}
    schemas["Accepted"] = {"type": "object", "required": ["accepted"], "properties": {
        "accepted": {"type": "integer"},
        "duplicate": {"type": "boolean", "description": "single event: its id was seen"},
        "duplicates": {"type": "array", "items": {"type": "integer"},
                       "description": "batch: positions of events whose id was seen"},
        "folded_label_values": {"type": "integer"}}}
    error = "#/components/schemas/Error"
    return {
        "openapi": "3.1.0",
        "info": {"title": "totem-agent events API", "version": __version__,
                 "description": "The kiosk application reports what happened; see "
                                "docs/events.md. A batch is all or nothing."},
        "paths": {"/api/v1/events": {"post": {
            "summary": "Record one event or a batch",
            "security": [{}, {"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "oneOf": [{"$ref": "#/components/schemas/Event"},
                          {"type": "array", "minItems": 1,
                           "items": {"$ref": "#/components/schemas/Event"}}]}}}},
            "responses": {
                "200": _response("Stored (committed to disk)", "#/components/schemas/Accepted"),
                "400": _response("Not UTF-8 JSON", error),
                "401": _response("Token missing or wrong", error),
                "403": _response("Not a loopback client, and the API is not opened to the "
                                 "network ([events] allow_remote)", error),
                "411": _response("No Content-Length", error),
                "413": _response("Body or batch too large", error),
                "415": _response("Not application/json", error),
                "422": _response("An event is invalid; nothing was applied", error),
                "503": _response("Could not be stored; nothing was applied", error),
            }}}},
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
