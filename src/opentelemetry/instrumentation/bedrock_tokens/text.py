"""Strings that always encode: what telemetry takes from user input or a service body.

An OTLP exporter encodes a whole batch at once, and protobuf refuses a string that is not
valid UTF-8: one lone surrogate (``"\\ud800"``, which JSON's ``\\ud800`` escape and any Python
caller can produce) in one model id makes the exporter drop every span of the batch. Model ids
and other identifiers also become span names and metric attributes, where control characters
and unbounded lengths do harm of their own. So:

* identifiers (model ids, response ids, guardrail ids, request ids, error types): lone
  surrogates and control characters become U+FFFD, and they are cut at ``ID_LIMIT``
  characters (the longest model identifier Bedrock accepts);
* any other string attribute: lone surrogates become U+FFFD (newlines in a stop sequence are
  the user's data, and valid UTF-8).

ASCII strings, nearly all of them, cost one ``isascii`` (plus one ``isprintable``) call.
"""

from __future__ import annotations

import re
from typing import Any

from . import names

ID_LIMIT = 2048
REPLACEMENT = "\ufffd"
_NOT_IN_IDS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

# Attributes whose values are identifiers, cleaned like model ids.
ID_ATTRIBUTES = frozenset({
    names.GEN_AI_REQUEST_MODEL, names.GEN_AI_RESPONSE_MODEL, names.GEN_AI_RESPONSE_ID,
    names.AWS_BEDROCK_GUARDRAIL_ID, names.AWS_REQUEST_ID, names.ERROR_TYPE,
})


def clean_id(value: str) -> str:
    """An identifier fit for a span name or a metric attribute."""
    if len(value) > ID_LIMIT:
        value = value[:ID_LIMIT]
    if value.isascii() and value.isprintable():
        return value
    return _NOT_IN_IDS.sub(REPLACEMENT, value)


def clean_value(value: Any) -> Any:
    """An attribute value that encodes: strings (also inside sequences) without lone
    surrogates; anything else unchanged."""
    if isinstance(value, str):
        return value if value.isascii() else _LONE_SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, (tuple, list)) and any(
        isinstance(item, str) and not item.isascii() for item in value
    ):
        return tuple(clean_value(item) for item in value)
    return value


def clean_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    """Clean every value of ``attrs`` in place (identifiers as identifiers); returns it."""
    for key, value in attrs.items():
        kind = type(value)
        if kind is int or kind is float or kind is bool:
            continue  # nothing to clean (the usual counts, flags and parameters)
        if kind is str and value.isascii() and value.isprintable() and len(value) <= ID_LIMIT:
            continue  # clean as an identifier and as a value: unchanged either way
        if isinstance(value, str) and key in ID_ATTRIBUTES:
            attrs[key] = clean_id(value)
        else:
            cleaned = clean_value(value)
            if cleaned is not value:
                attrs[key] = cleaned
    return attrs
