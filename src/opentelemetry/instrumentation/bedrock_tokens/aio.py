"""The asynchronous driver: aiobotocore's ``AioBaseClient._make_api_call``.

It drives the same :class:`~.patch.Call` as the botocore wrapper (describe, open, settle),
so spans, attributes, counts and metrics come from the same code; what is its own is only
what awaiting needs: the original call is awaited, the InvokeModel body (an aiohttp or httpx
``StreamingBody``) is read with ``await``, and event streams get the ``async for`` proxy.

The wrapper itself is not a coroutine function: for any other service it returns the
original coroutine untouched, so those calls pay one attribute lookup and one compare.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any, Optional

from . import patch
from .streams import AsyncStreamProxy
from .usage import to_count

_logger = logging.getLogger(__name__)

_BODY_CHUNK = 64 * 1024  # pieces of the body read at a time (patch.MAX_PARSED_RESPONSE in all)


async def call_async(handler: patch.Handler, wrapped: Any, client: Any, args: Any,
                     kwargs: Any) -> Any:
    call = handler.begin(client, args, kwargs)
    if call is None:
        return await wrapped(*args, **kwargs)
    call.open(await call.precount_async())
    with call:
        result = await wrapped(*args, **kwargs)
    if call.settle(result, AsyncStreamProxy):
        call.settle_body(await take_body(result))
    return result


def make_api_call_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    handler = patch.handler_for(instance)
    if handler is None:
        return wrapped(*args, **kwargs)  # the original coroutine, untouched
    return call_async(handler, wrapped, instance, args, kwargs)


make_api_call_wrapper._bedrock_tokens = True  # type: ignore[attr-defined]


# -- the InvokeModel body -------------------------------------------------------------------------
# The body is read before the result is returned (when only it can give the counts, or the
# finish reason, id and model), and a body of the user's own class is put back whose reads
# give what the original's would have: the same bytes, the same errors at the same points,
# the same length check. How a transport fails mid-body differs, so each is replayed at the
# level its own body class reads from:
#   aiohttp  a short or cut body raises from its StreamReader once the data before the cut
#            has been read: replayed above the class's read() (bytes, then the error);
#   httpx    the class buffers what ``aiter_raw()`` yields and converts httpx's errors
#            itself: the raw chunks and the raw error are replayed below it, so its own
#            buffering and conversion run unchanged.


class _Replay:
    """aiohttp: the bytes the instrumentation read, then the error the original raised, by
    every read that reaches it (a whole-body read reaches it at once and loses the bytes):
    aiohttp's StreamReader keeps its exception and raises it on every later read. Mixed in
    before aiobotocore's own body class, whose iteration, line splitting, ``tell`` and
    ``async with`` then run unchanged over it."""

    _replay: io.BytesIO
    _replay_size: int
    _replay_error: Optional[BaseException]
    _replay_rest: Any  # the original body, when only the first part was read (no length)
    _amount_read: int

    if TYPE_CHECKING:
        def _verify_content_length(self) -> None: ...  # botocore's, from the body class

    _replay_closed = False

    def close(self) -> None:  # aiohttp's close() is sync
        super().close()  # type: ignore[misc]
        self._replay_closed = True

    def _take(self, amt: Optional[int]) -> bytes:
        whole = amt is None or amt < 0
        error = self._replay_error
        if whole and error is not None:
            self._replay = io.BytesIO()
            raise error
        chunk = self._replay.read(None if whole else amt)
        if not chunk and error is not None:
            raise error
        return chunk

    async def read(self, amt: Optional[int] = None) -> bytes:
        if self._replay_closed:  # the class's own read of its closed response: what it raises
            return await super().read(amt)  # type: ignore[misc,no-any-return]
        if amt == 0:
            return b""
        rest = self._replay_rest
        if rest is not None:  # what was read, then the original body for the rest (it counts
            whole = amt is None or amt < 0  # and checks the length of all of it)
            chunk = self._replay.read(None if whole else amt)
            if whole:
                chunk += await rest.read(amt)
            elif not chunk:
                chunk = await rest.read(amt)
            self._amount_read += len(chunk)
            return chunk
        chunk = self._take(amt)
        self._amount_read += len(chunk)
        if amt is None or (not chunk and amt > 0):
            self._verify_content_length()
        return chunk

    async def readinto(self, b: Any) -> int:
        if self._replay_closed:
            return await super().readinto(b)  # type: ignore[misc,no-any-return]
        if len(b) == 0:
            return 0
        if self._replay_rest is not None:
            chunk = await self.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)
        chunk = self._take(len(b))
        b[: len(chunk)] = chunk
        self._amount_read += len(chunk)
        if not chunk:
            self._verify_content_length()
        return len(chunk)

    def readable(self) -> bool:  # aiohttp's: not at EOF (a failed reader never reaches it)
        if self._replay_rest is not None and self._replay.tell() >= self._replay_size:
            return bool(self._replay_rest.readable())
        return self._replay_error is not None or self._replay.tell() < self._replay_size


class _RawReplay:
    """httpx: the raw chunks, then the raw error, in place of ``aiter_raw()``; once the user
    has closed the body, what httpx's ``aiter_raw()`` of a closed response raises."""

    _stream_iter: Any
    _replay_chunks: list[bytes]
    _replay_error: Optional[BaseException]
    _replay_rest: Any  # aiter_raw() itself, when only the first part was read (no length)
    _replay_closed = False

    async def close(self) -> None:  # httpx's close() is async, and aclose() is close()
        self._replay_closed = True
        await super().close()  # type: ignore[misc]

    aclose = close

    def _ensure_stream(self) -> None:
        if self._stream_iter is None:
            self._stream_iter = self._replay_raw()

    async def _replay_raw(self) -> Any:
        for chunk in self._replay_chunks:
            if self._replay_closed:
                from httpx import StreamClosed

                raise StreamClosed()
            yield chunk
        if self._replay_error is not None:
            raise self._replay_error
        if self._replay_rest is not None:
            async for chunk in self._replay_rest:
                yield chunk


_replay_classes: dict[tuple[type, type], type] = {}


def _replay_class(mixin: type, body_class: type) -> type:
    found = _replay_classes.get((mixin, body_class))
    if found is None:
        # The user's class, by name and by isinstance; only the reads are ours.
        found = type(body_class.__name__, (mixin, body_class), {"__module__": __name__})
        _replay_classes[(mixin, body_class)] = found
    return found


async def take_body(result: Any) -> Optional[bytes]:
    """Read the InvokeModel body and put back one that replays it; the bytes when the body
    arrived whole, else None (a body cut short gives no counts)."""
    try:
        return await _take_body(result)
    except Exception:
        _logger.debug("bedrock-tokens: could not read a response body", exc_info=True)
        return None


async def _take_body(result: Any) -> Optional[bytes]:
    body = result.get("body") if isinstance(result, dict) else None
    raw = getattr(body, "_raw_stream", None)
    if body is None or raw is None or not hasattr(body, "read"):
        return None
    length = to_count(getattr(body, "_content_length", None))
    if length is not None and length > patch.MAX_PARSED_RESPONSE:
        return None  # too large to parse: never touched
    # Only the body classes whose replay is known to be faithful are read; any other (an
    # older or newer aiobotocore's) is left alone, and the headers give what they give.
    httpx_raw = getattr(body, "_stream_iter", False) is None and hasattr(raw, "aiter_raw")
    if not httpx_raw and not hasattr(getattr(raw, "content", None), "read"):
        return None
    parts: list[bytes] = []
    got = 0
    error: Optional[BaseException] = None
    over = False  # no stated length, and more than the cap: the rest is left to the user
    chunks = raw.aiter_raw().__aiter__() if httpx_raw else None
    try:
        while not over:
            if chunks is not None:
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
            else:
                chunk = await body.read(min(_BODY_CHUNK, patch.MAX_PARSED_RESPONSE + 1 - got))
                if not chunk:
                    break
            parts.append(chunk)
            got += len(chunk)
            over = got > patch.MAX_PARSED_RESPONSE
    except Exception as exc:
        error = exc
    if chunks is not None:
        replay = _replay_class(_RawReplay, type(body))(raw, body._content_length)
        replay._replay_chunks = parts
        replay._replay_rest = chunks if over else None
    else:
        replay = _replay_class(_Replay, type(body))(raw, body._content_length)
        replay._replay = io.BytesIO(b"".join(parts))
        replay._replay_size = got
        replay._replay_rest = body if over else None
    replay._replay_error = error
    result["body"] = replay
    if over:
        return None
    data = b"".join(parts)
    complete = error is None and (length is None or len(data) == length)
    return data if complete else None
