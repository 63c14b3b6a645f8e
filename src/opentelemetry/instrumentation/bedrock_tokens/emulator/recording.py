"""What the emulator remembers about each request, bounded so long runs keep flat memory."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

__all__ = ["RecordedRequest", "RequestLog", "StepUsage"]


@dataclass(frozen=True)
class StepUsage:
    """One model invocation an agent-runtime call reported in its trace events."""

    step_type: str
    model_id: str
    input_tokens: int
    output_tokens: int
    client_request_id: str


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received, and the usage the emulator reported for it.

    ``operation`` and ``model_id`` are None when the path matched no operation. The token
    fields are None wherever the response carried no such count (errors, embeddings' output,
    cache counts of models or requests without caching).
    """

    operation: Optional[str]
    model_id: Optional[str]
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    status: int
    request_id: str
    error_code: Optional[str] = None
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    cache_read_tokens: Optional[int] = None
    cache_write_tokens: Optional[int] = None
    # Agent-runtime calls with enableTrace: the usage of each model step, in trace order
    # (input_tokens / output_tokens are then their totals).
    steps: tuple[StepUsage, ...] = ()


class RequestLog:
    """Thread-safe ring buffer of the last ``maxlen`` requests."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._items: deque[RecordedRequest] = deque(maxlen=maxlen)

    def append(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
