"""Checking a request against a published schema, and answering like each provider does.

`check(value, schema)` walks the JSON Schema subset of providers/model_schemas.py (type
with `nullable`, enum, minimum/maximum, maxLength, required, properties,
`additionalProperties: false`, items, minItems/maxItems, format uri) and returns the
violations plus the unknown fields the provider would silently ignore (an object without
`additionalProperties: false`). The three renderers turn violations into the provider's
real error answer:

- Replicate: HTTP 422 problem details, `{"detail": "- input.x: ...\\n", "status": 422,
  "title": "Input validation failed", "invalid_fields": [{"type", "field",
  "description"}]}` (descriptions worded like its validator: "Invalid type. Expected:
  integer, given: null", "duration must be one of the following: ...", "Must be less than
  or equal to 12", "Additional property inptu is not allowed").
- OpenAI: HTTP 400 `{"error": {"message", "type": "invalid_request_error", "param",
  "code"}}` for the first problem (`unknown_parameter`, `invalid_value`, ...).
- Veo / Vertex: HTTP 400 google.rpc.Status `{"error": {"code": 400, "message", "status":
  "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
  "fieldViolations": [{"field", "description"}]}]}}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]
_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")


@dataclass(frozen=True)
class Violation:
    kind: str  # required | invalid_type | enum | number_gte | number_lte | string_lte |
    #            array_min_items | array_max_items | format | additional_property_not_allowed
    path: Path  # where the value is (for required / additional: the object holding it)
    expected: Any = None  # the schema's bound: a type, the enum, a minimum, a format...
    given: Any = None  # the value (for required / additional: the property name)

    @property
    def field(self) -> str:
        """Dotted location of the value, e.g. `input.duration` (`instances[0].image`)."""
        return dotted(self.path)


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # dotted fields the provider ignores


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _is(value: Any, kind: str) -> bool:
    given = json_type(value)
    if kind == "number":
        return given in ("integer", "number")
    if kind == "integer":  # JSON Schema: a number with a zero fractional part is an integer
        return given == "integer" or (given == "number" and float(value).is_integer())
    return given == kind


def check(value: Any, schema: Mapping[str, Any], path: Path = ()) -> Report:
    report = Report()
    _walk(value, schema, path, report)
    return report


def _walk(value: Any, schema: Mapping[str, Any], path: Path, report: Report) -> None:
    add = report.violations.append
    if value is None and schema.get("nullable"):
        return
    kind = schema.get("type")
    if kind in _TYPES and not _is(value, kind):
        add(Violation("invalid_type", path, kind, json_type(value)))
        return
    if "enum" in schema and value not in schema["enum"]:
        add(Violation("enum", path, list(schema["enum"]), value))
        return
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            add(Violation("number_gte", path, schema["minimum"], value))
        if "maximum" in schema and value > schema["maximum"]:
            add(Violation("number_lte", path, schema["maximum"], value))
    if kind == "string":
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            add(Violation("string_lte", path, schema["maxLength"], value))
        if schema.get("format") == "uri" and not value.startswith(("https://", "http://", "data:")):
            add(Violation("format", path, "uri", value))
    if kind == "array":
        if "minItems" in schema and len(value) < schema["minItems"]:
            add(Violation("array_min_items", path, schema["minItems"], value))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            add(Violation("array_max_items", path, schema["maxItems"], value))
        for i, item in enumerate(value):
            _walk(item, schema.get("items", {}), (*path, i), report)
    if kind == "object":
        props: Mapping[str, Any] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                add(Violation("required", path, None, name))
        for name, item in value.items():
            if name in props:
                _walk(item, props[name], (*path, name), report)
            elif schema.get("additionalProperties") is False:
                add(Violation("additional_property_not_allowed", path, None, name))
            elif props:  # a schema that lists its properties and lets others through
                report.ignored.append(dotted((*path, name)))


# --- Replicate ----------------------------------------------------------------------------


def replicate_description(v: Violation) -> str:
    name = v.path[-1] if v.path else ""
    return {
        "required": lambda: f"{v.given} is required",
        "invalid_type": lambda: (
            f"Invalid type. Expected: {v.expected}, given: {json_type(v.given)}"
        ),
        "enum": lambda: (
            f"{name} must be one of the following: " + ", ".join(json.dumps(e) for e in v.expected)
        ),
        "number_gte": lambda: f"Must be greater than or equal to {v.expected}",
        "number_lte": lambda: f"Must be less than or equal to {v.expected}",
        "string_lte": lambda: f"String length must be less than or equal to {v.expected}",
        "array_min_items": lambda: f"Array must have at least {v.expected} items",
        "array_max_items": lambda: f"Array must have at most {v.expected} items",
        "format": lambda: f"Does not match format '{v.expected}'",
        "additional_property_not_allowed": lambda: f"Additional property {v.given} is not allowed",
    }[v.kind]()


def replicate_problem(violations: list[Violation]) -> dict[str, Any]:
    """The 422 body Replicate answers a create whose input does not match the schema."""
    fields = [
        {"type": v.kind, "field": v.field, "description": replicate_description(v)}
        for v in violations
    ]
    return {
        "detail": "".join(f"- {f['field']}: {f['description']}\n" for f in fields),
        "status": 422,
        "title": "Input validation failed",
        "invalid_fields": fields,
    }


# --- OpenAI -------------------------------------------------------------------------------


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def openai_error(v: Violation) -> dict[str, Any]:
    """OpenAI's 400 body for the first problem of a request."""
    param = str(v.given) if v.kind in ("required", "additional_property_not_allowed") else v.field
    if v.kind == "additional_property_not_allowed":
        message, code = f"Unknown parameter: '{param}'.", "unknown_parameter"
    elif v.kind == "required":
        message, code = f"Missing required parameter: '{param}'.", "missing_required_parameter"
    elif v.kind == "invalid_type":
        message = (
            f"Invalid type for '{param}': expected {_article(v.expected)}, but got "
            f"{_article(json_type(v.given))} instead."
        )
        code = "invalid_type"
    elif v.kind == "enum":
        *head, last = (f"'{e}'" for e in v.expected)
        allowed = f"{', '.join(head)}, and {last}" if head else last
        message = f"Invalid value: '{v.given}'. Supported values are: {allowed}."
        code = "invalid_value"
    elif v.kind in ("number_gte", "number_lte"):
        below = v.kind == "number_gte"
        message = (
            f"Invalid '{param}': integer {'below minimum' if below else 'above maximum'} value. "
            f"Expected a value {'>=' if below else '<='} {v.expected}, but got {v.given} instead."
        )
        code = "integer_below_min_value" if below else "integer_above_max_value"
    elif v.kind == "string_lte":
        message = (
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{v.expected}, but got a string with length {len(v.given)} instead."
        )
        code = "string_above_max_length"
    else:
        message, code = f"Invalid value for '{param}'.", "invalid_value"
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }


# --- Veo (Vertex AI) ------------------------------------------------------------------------


def veo_error(violations: list[Violation]) -> dict[str, Any]:
    """Vertex AI's 400 google.rpc.Status for a request its schema refuses."""
    unknown = [v for v in violations if v.kind == "additional_property_not_allowed"]
    if unknown:  # the JSON parser refuses these before the model sees anything
        found = [
            f'Invalid JSON payload received. Unknown name "{v.given}"'
            f"{f' at {v.field!r}' if v.path else ''}: Cannot find field."
            for v in unknown
        ]
        violations_json = [{"description": d} for d in found]
        message = "\n".join(found)
    else:
        violations_json = [
            {"field": v.field, "description": _veo_description(v)} for v in violations
        ]
        message = "; ".join(f"{f['field']}: {f['description']}" for f in violations_json)
    return {
        "error": {
            "code": 400,
            "message": message,
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": violations_json,
                }
            ],
        }
    }


def _veo_description(v: Violation) -> str:
    if v.kind == "required":
        return f"{dotted((*v.path, str(v.given)))} is required."
    if v.kind == "enum":
        return f"Unsupported value {json.dumps(v.given)}; supported values: " + ", ".join(
            json.dumps(e) for e in v.expected
        )
    return replicate_description(v)
