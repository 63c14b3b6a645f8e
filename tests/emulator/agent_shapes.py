"""Field-by-field checks of raw agent-runtime responses against botocore's service model.

botocore's parser drops members it does not know, so parsing alone cannot show that the
emulator sends only modelled fields. These helpers walk the raw JSON (bodies, and the payload of
every event-stream frame) against the shapes of ``bedrock-agent-runtime`` 2023-07-26: every key
a member, every required member present, unions with exactly one member, enums valid, blobs
base64, timestamps parseable, numbers of the right kind.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import botocore.session
from botocore.eventstream import EventStreamBuffer
from botocore.model import Shape
from botocore.utils import parse_timestamp

_MODEL = botocore.session.get_session().get_service_model("bedrock-agent-runtime")


def shape(name: str) -> Shape:
    return _MODEL.shape_for(name)


def output_shape(operation: str) -> Shape:
    return _MODEL.operation_model(operation).output_shape


def check(model: Shape, value: Any, where: str = "$") -> None:
    """Assert ``value`` (raw JSON) is a valid instance of ``model``."""
    kind = model.type_name
    if model.metadata.get("document"):
        return  # any JSON value
    if kind == "structure":
        assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
        members = model.members
        unknown = sorted(set(value) - set(members))
        assert not unknown, f"{where}: not in {model.name}: {unknown}"
        missing = [m for m in model.required_members if m not in value]
        assert not missing, f"{where}: {model.name} lacks required {missing}"
        if model.metadata.get("union"):
            assert len(value) == 1, f"{where}: union {model.name} with members {sorted(value)}"
        for key, item in value.items():
            check(members[key], item, f"{where}.{key}")
    elif kind == "list":
        assert isinstance(value, list), f"{where}: expected a list"
        for index, item in enumerate(value):
            check(model.member, item, f"{where}[{index}]")
    elif kind == "map":
        assert isinstance(value, dict), f"{where}: expected a map"
        for key, item in value.items():
            check(model.value, item, f"{where}[{key!r}]")
    elif kind == "string":
        assert isinstance(value, str), f"{where}: expected a string, got {value!r}"
        if model.enum:
            assert value in model.enum, f"{where}: {value!r} not in {model.enum}"
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r}"
    elif kind in ("float", "double"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
    elif kind == "boolean":
        assert isinstance(value, bool), f"{where}: expected a boolean"
    elif kind == "blob":
        assert isinstance(value, str), f"{where}: a blob is base64 text in JSON"
        base64.b64decode(value, validate=True)
    elif kind == "timestamp":
        parse_timestamp(value)
    else:  # pragma: no cover - the model has no other kinds in these shapes
        raise AssertionError(f"{where}: unchecked kind {kind}")


def frames(raw: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Decode an event-stream body into (headers, payload) pairs, checking every CRC."""
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return [(dict(message.headers), message.payload) for message in buffer]


def check_stream(stream_shape: Shape, raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Check every frame of an event-stream body against the stream union's members.

    Returns ``(event type, payload)`` per event frame; exception frames are checked too and
    returned as ``("!" + exception type, payload)``.
    """
    events: list[tuple[str, dict[str, Any]]] = []
    for headers, payload in frames(raw):
        kind = headers[":message-type"]
        name = headers[":event-type"] if kind == "event" else headers[":exception-type"]
        assert name in stream_shape.members, f"{name} is not a member of {stream_shape.name}"
        member = stream_shape.members[name]
        if kind == "event":
            assert member.serialization.get("event"), f"{name} is not an event member"
        else:
            assert member.metadata.get("exception"), f"{name} is not an exception member"
        body = json.loads(payload)
        check(member, body, name)
        events.append((name if kind == "event" else "!" + name, body))
    return events
