"""The JSON field router of plugins/json-router, in Python (componentize-py).

Same config, same actions, same error kinds as the Rust plugin:

    [plugins.python-router]
    wasm = "examples/python-router/python_router.wasm"
    sinks = ["billing", "audit", "archive"]
    config = { field = "data.object.status", "route.paid" = "billing,audit", default = "archive" }

`field` is a dotted path through JSON objects. `route.<value>` lists the
sinks (comma-separated) for events whose field is `<value>`: a string as is,
a number as the body wrote it, `true` or `false`. `default` lists the sinks
for everything else; without it the rest is dropped with a reason. Each sink
gets the body unchanged, keyed by the event id, with the value as subject
suffix when it is a string, number or boolean.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config
from wit_world.imports.types import (
    Action_Deliver,
    Action_Drop,
    Delivery,
    PluginError_InvalidInput,
    PluginError_Rejected,
)


class Number(str):
    """A JSON number, kept as the text the body wrote (`1.50` stays `1.50`)."""


def _no_constants(name):
    # Python's json alone accepts NaN and Infinity; JSON (and serde_json) do not.
    raise ValueError(f"{name} is not JSON")


# Marks a field that the body does not have.
_MISSING = object()


def describe(field, value):
    """The value's routing text, or None and why it has none."""
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, str):
        return str(value), None
    if value is _MISSING:
        return None, f"{field} is missing"
    if value is None:
        return None, f"{field} is null"
    if isinstance(value, list):
        return None, f"{field} is an array"
    return None, f"{field} is an object"


class Handler(exports.Handler):
    """The exported `handler` interface."""

    def handle(self, event):
        field = config.get("field")
        if field is None:
            raise Err(PluginError_Rejected("config `field` is not set"))
        try:
            body = json.loads(
                event.body.decode("utf-8"),
                parse_int=Number,
                parse_float=Number,
                parse_constant=_no_constants,
            )
        except (ValueError, RecursionError) as e:
            raise Err(PluginError_InvalidInput(f"body is not JSON: {e}"))
        value = body
        for segment in field.split("."):
            if not isinstance(value, dict) or segment not in value:
                value = _MISSING
                break
            value = value[segment]
        text, why = describe(field, value)
        chosen = (sinks(f"route.{text}") if text is not None else None) or sinks("default")
        if chosen is None:
            if text is not None:
                return [Action_Drop(f"no route for {field} = {text}")]
            return [Action_Drop(f"no route: {why}")]
        return [
            Action_Deliver(
                Delivery(
                    sink=sink,
                    payload=event.body,
                    headers=[("content-type", "application/json")],
                    subject_suffix=text,
                    key=event.id,
                )
            )
            for sink in chosen
        ]


def sinks(key):
    """The sink names listed in config `key`, or None if unset or naming none."""
    names = [name.strip() for name in (config.get(key) or "").split(",")]
    return [name for name in names if name] or None
