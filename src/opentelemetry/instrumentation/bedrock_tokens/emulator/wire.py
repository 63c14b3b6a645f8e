"""Small helpers shared by the non-streaming and streaming response paths."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["json_bytes", "malformed", "ms_since"]

_ENCODER = json.JSONEncoder(separators=(",", ":"))


def json_bytes(value: Mapping[str, Any]) -> bytes:
    """Compact JSON, as the service sends it."""
    return _ENCODER.encode(value).encode("utf-8")


def malformed(raw: bytes) -> bytes:
    """Cut a JSON document in half: a 200 body no JSON parser accepts."""
    return raw[: max(1, len(raw) // 2)]


def ms_since(started: float) -> int:
    """Whole milliseconds elapsed since a ``time.monotonic()`` reading."""
    return max(0, int((time.monotonic() - started) * 1000))
