"""Encoder for the AWS event-stream binary framing, as Bedrock Runtime streams use it.

Only string headers (type 7) are written, because Bedrock sends nothing else. Frames are built
one at a time so a stream of any length costs constant memory, and a frame's message CRC can be
deliberately broken to exercise the client's checksum check.

Layout (big-endian): total_len u32 | headers_len u32 | prelude_crc u32 | headers | payload |
message_crc u32, where both CRCs are CRC-32 over everything before them.
"""

from __future__ import annotations

import base64
import functools
import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Optional

__all__ = [
    "chunk_frame",
    "encode_frame",
    "event_frame",
    "event_headers",
    "exception_frame",
]

_STRING_TYPE = 7


@functools.lru_cache(maxsize=64)
def _encode_headers(headers: tuple[tuple[str, str], ...]) -> bytes:
    """Encode string headers; cached, since a stream repeats the same few header sets."""
    parts: list[bytes] = []
    for name, value in headers:
        raw_name = name.encode("utf-8")
        raw_value = value.encode("utf-8")
        parts.append(
            struct.pack(">B", len(raw_name))
            + raw_name
            + struct.pack(">BH", _STRING_TYPE, len(raw_value))
            + raw_value
        )
    return b"".join(parts)


def encode_frame(
    headers: Sequence[tuple[str, str]], payload: bytes, *, corrupt_crc: bool = False
) -> bytes:
    """Encode one event-stream message; with ``corrupt_crc`` its message CRC is wrong."""
    raw_headers = _encode_headers(tuple(headers))
    total = 16 + len(raw_headers) + len(payload)
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + raw_headers + payload
    crc = zlib.crc32(body) & 0xFFFFFFFF
    if corrupt_crc:
        crc ^= 0xFFFFFFFF
    return body + struct.pack(">I", crc)


_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _json(value: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")


def _json_string(value: str) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")


@functools.lru_cache(maxsize=64)
def event_headers(event_type: str) -> tuple[tuple[str, str], ...]:
    """The headers of a normal event frame, in the order Bedrock sends them."""
    return (
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    )


def event_frame(event_type: str, payload: Mapping[str, Any], *, corrupt_crc: bool = False) -> bytes:
    """A normal event frame (headers in the order Bedrock sends them)."""
    return encode_frame(event_headers(event_type), _json(payload), corrupt_crc=corrupt_crc)


def chunk_frame(inner: bytes, padding: Optional[str] = None, *, corrupt_crc: bool = False) -> bytes:
    """An InvokeModelWithResponseStream ``chunk``: the model's JSON, base64 in ``bytes``."""
    # Base64 needs no JSON escaping, so the payload is formatted directly (hot path).
    payload = b'{"bytes":"' + base64.b64encode(inner)
    if padding is not None:
        payload += b'","p":' + _json_string(padding)
    else:
        payload += b'"'
    return encode_frame(event_headers("chunk"), payload + b"}", corrupt_crc=corrupt_crc)


def exception_frame(
    exception_type: str, payload: Mapping[str, Any], *, corrupt_crc: bool = False
) -> bytes:
    """A modelled mid-stream exception; ``exception_type`` is the lowerCamel union member."""
    headers = (
        (":exception-type", exception_type),
        (":content-type", "application/json"),
        (":message-type", "exception"),
    )
    return encode_frame(headers, _json(payload), corrupt_crc=corrupt_crc)
