"""The ``BaseClient._make_api_call`` wrapper and the table of operations it traces.

One wrapt wrapper on botocore's ``BaseClient._make_api_call`` covers every client, created
before or after ``instrument()``. For any other service it costs one attribute lookup and one
string compare. For a Bedrock Runtime operation in ``OPERATIONS`` the call flows:

    describe the request (model id, operation name, request attributes)   before the call
    [blocking pre-count]                                                   precount.py
    start the span (sampling-relevant attributes, links), make it current
    call botocore                  -> exception: record.end(error=...) and re-raise unchanged
    read the counts from the result:
        InvokeModel        headers, then the body when needed          usage.py, families.py
        Converse           usage / metrics
        CountTokens        inputTokens, on its own attribute (never usage)
        streams            wrap the EventStream; it ends the record later    streams.py
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional, Protocol
from urllib.parse import urlsplit

from botocore.response import StreamingBody
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Link, SpanKind

from opentelemetry import context, trace

from . import agents, content, families, names, tiers
from .config import Settings
from .countclient import resolved_credentials
from .extras import NO_START, Extras, ResponseFacts, Start
from .images import output_images
from .models import UNKNOWN, ModelInfo, parse_model_id
from .pricing import ttl_breakdown_from_anthropic, ttl_breakdown_from_converse
from .record import CallRecord
from .streams import StreamProxy, wrap_stream
from .telemetry import Telemetry
from .text import clean_attributes, clean_id
from .tiers import NO_TIER
from .usage import Usage, from_converse, from_headers, merge, to_count

_logger = logging.getLogger(__name__)

SERVICE = names.SERVICE_RUNTIME
# The services the drivers hand to the handler; every other one is called straight through.
SERVICES = frozenset({names.SERVICE_RUNTIME, names.SERVICE_AGENT_RUNTIME})
_MAX_PARSED_REQUEST = 256 * 1024  # larger InvokeModel bodies are not parsed for attributes
_BODY_CHUNK = 64 * 1024
# The most of an InvokeModel response body ever held for parsing. A larger body (an image
# model's, say) is left to the user untouched when its length says so up front, or handed back
# as the part read followed by the rest of the live stream; either way it is not parsed.
MAX_PARSED_RESPONSE = 1024 * 1024

# Set in the context by our own internal calls (pre-count) so the wrapper lets them through.
INTERNAL_CALL_KEY = context.create_key("bedrock-tokens-internal-call")


class OpSpec(NamedTuple):
    kind: str  # invoke | converse | count | agent (bedrock-agent-runtime, see agents.py)
    stream_key: Optional[str]  # where botocore puts the EventStream, for streamed operations


OPERATIONS: dict[str, OpSpec] = {
    "InvokeModel": OpSpec("invoke", None),
    "InvokeModelWithResponseStream": OpSpec("invoke", "body"),
    "Converse": OpSpec("converse", None),
    "ConverseStream": OpSpec("converse", "stream"),
    "CountTokens": OpSpec("count", None),
    # bedrock-agent-runtime: agents, inline agents, flows, knowledge bases (the two services
    # have no operation name in common)
    **{name: OpSpec("agent", op.stream_key) for name, op in agents.AGENT_OPERATIONS.items()},
}


class Request(NamedTuple):
    """What the wrapper knows of a call before sending it."""

    operation_name: str  # botocore's, e.g. "InvokeModel"
    spec: OpSpec
    model: str
    info: ModelInfo
    family: str
    operation: str  # gen_ai.operation.name
    body: Any  # parsed InvokeModel body or the Converse params; None if unparsed
    attributes: dict[str, Any]
    address: Optional[str]
    port: Optional[int]
    raw_model: str = ""  # the modelId as the user passed it (model: cleaned for telemetry)
    span_name: Optional[str] = None  # when not "{operation} {model}" (agent-runtime calls)
    extra: Start = NO_START  # tier, attribution, resolved profile (extras.py)


class Estimate(NamedTuple):
    """A pre-count's result, as the invocation span needs it."""

    tokens: Optional[int]
    span_context: Optional[trace.SpanContext]
    skipped: Optional[str] = None  # why no pre-count was made (names.SKIPPED_*)


class Precounter(Protocol):
    def before(
        self, client: Any, request: Request, params: Mapping[str, Any],
        credentials: Any = None,
    ) -> Optional[Estimate]:
        """Blocking mode: count (within the budget) and run the user's hook; may raise."""

    async def before_async(
        self, client: Any, request: Request, params: Mapping[str, Any],
        credentials: Any = None,
    ) -> Optional[Estimate]:
        """Blocking mode for an async client: the same, awaited, never blocking the loop."""

    def after_start(
        self, client: Any, request: Request, params: Mapping[str, Any], record: CallRecord,
        credentials: Any = None,
    ) -> None:
        """Background mode: submit a count linked to the started invocation span."""




class _Pending(NamedTuple):
    """What an InvokeModel result said before its body was read."""

    usage: Optional[Usage]
    attrs: dict[str, Any]


class Call:
    """One traced call as both drivers see it: described before it is sent, opened (span
    started) around it, settled from its result. The driver's only own work is to call the
    original (awaiting it or not) and, when asked, to read the InvokeModel body.

    Every step here catches its own failures: the user's call never sees one of ours (the
    pre-count budget hook excepted, which may veto the call by design)."""

    __slots__ = ("_client", "_credentials", "_handler", "_params", "_pending", "_precounter",
                 "_token", "record", "request")

    def __init__(
        self,
        handler: Handler,
        client: Any,
        request: Request,
        params: Mapping[str, Any],
        precounter: Optional[Precounter],
    ) -> None:
        self._handler = handler
        self._client = client
        self.request = request
        self._params = params
        self._precounter = precounter
        self.record: Optional[CallRecord] = None
        self._token: Optional[object] = None
        self._pending: Optional[_Pending] = None
        self._credentials: Any = None  # an async client's, resolved for the pre-count

    def precount(self) -> Optional[Estimate]:
        """Blocking mode: count first (within the budget); the user's hook may raise."""
        if self._precounter is None:
            return None
        return self._precounter.before(self._client, self.request, self._params)

    async def precount_async(self) -> Optional[Estimate]:
        """The async client's pre-count: its credentials resolved on the loop (the pre-count
        runs on the pool's threads, through a sync twin), then, in blocking mode, the count
        awaited within the budget. The user's hook may raise, as in ``precount``."""
        if self._precounter is None:
            return None
        try:
            self._credentials = await resolved_credentials(self._client)
        except Exception:
            _logger.debug("bedrock-tokens: no credentials for a pre-count", exc_info=True)
            self._precounter = None
            return None
        if self._credentials is None:  # unsigned or token auth: no twin can sign for it
            self._precounter = None
            return None
        return await self._precounter.before_async(
            self._client, self.request, self._params, self._credentials
        )

    def open(self, estimate: Optional[Estimate]) -> None:
        """Start the span (with the pre-count's link), then any background pre-count."""
        try:
            self.record = self._handler._start(self.request, estimate)
        except Exception:
            _logger.debug("bedrock-tokens: could not start a span", exc_info=True)
            return
        if self._precounter is not None:
            try:
                self._precounter.after_start(
                    self._client, self.request, self._params, self.record, self._credentials
                )
            except Exception:
                _logger.debug("bedrock-tokens: background pre-count failed", exc_info=True)

    def __enter__(self) -> None:
        """Our span is current while botocore runs the call (HTTP spans nest under it)."""
        if self.record is not None:
            self._token = context.attach(trace.set_span_in_context(self.record.span))

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        if self._token is not None:
            context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        if exc is not None and self.record is not None:
            self.record.end(error=exc)  # read before the exception reaches the user

    def settle(self, result: Any, proxy: type[StreamProxy]) -> bool:
        """End the record from the result; True if the driver must read the body first."""
        if self.record is None:
            return False
        try:
            self._pending = self._handler.settle(self.request, self.record, result, proxy)
        except Exception:
            _logger.debug("bedrock-tokens: could not read a response", exc_info=True)
            self.record.end()
            return False
        return self._pending is not None

    def settle_body(self, data: Optional[bytes]) -> None:
        if self.record is None or self._pending is None:
            return
        try:
            self._handler.settle_body(self.request, self.record, self._pending, data)
        except Exception:
            _logger.debug("bedrock-tokens: could not read a response body", exc_info=True)
            self.record.end()


_endpoints: dict[str, tuple[Optional[str], Optional[int]]] = {}


def _service(client: Any) -> Optional[str]:
    try:
        return str(client._service_model.service_name)
    except AttributeError:
        return None


def _server(client: Any) -> tuple[Optional[str], Optional[int]]:
    try:
        url = client.meta.endpoint_url
    except AttributeError:
        return None, None
    found = _endpoints.get(url)
    if found is None:
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            found = (parts.hostname, port)
        except ValueError:
            found = (None, None)
        if len(_endpoints) < 256:
            _endpoints[url] = found
    return found


def _parse_request_body(body: Any) -> Any:
    """The InvokeModel request body as JSON, without ever consuming a file-like body."""
    if isinstance(body, (bytes, bytearray, str)) and len(body) <= _MAX_PARSED_REQUEST:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def _guardrail(spec: OpSpec, params: Mapping[str, Any]) -> Any:
    if spec.kind == "invoke":
        return params.get("guardrailIdentifier")
    config = params.get("guardrailConfig")
    return config.get("guardrailIdentifier") if isinstance(config, Mapping) else None


class _Replay(io.RawIOBase):
    """Raw stream of an InvokeModel body the instrumentation has read: the bytes that arrived,
    then the end the original stream had. urllib3 fails a whole-body read of a truncated body
    (losing the partial bytes) but lets sized reads return what arrived, then b""; an error in
    the middle (a timeout) fails whichever read reaches it. Afterwards, and after close(),
    reads give b"", as the spent original would, and botocore's own length check reports what
    it reports without us."""

    def __init__(
        self,
        data: bytes,
        error: Optional[BaseException],
        whole_only: bool,
        rest: Any = None,
    ) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self._error = error
        self._whole_only = whole_only
        self._rest = rest  # the live raw stream the bytes were read from, when not all were

    def readable(self) -> bool:
        return True

    def _raise(self) -> bytes:
        error, self._error = self._error, None
        assert error is not None
        raise error

    def read(self, amt: Optional[int] = None) -> bytes:
        whole = amt is None or amt < 0
        if self._rest is not None:  # the prefix, then the live stream, as one stream
            chunk = self._data.read(None if whole else amt)
            if whole:  # in pieces, joined once: what urllib3 does for a body of no length
                pieces = [chunk]
                while True:
                    piece: bytes = self._rest.read(MAX_PARSED_RESPONSE)
                    if not piece:
                        return b"".join(pieces)
                    pieces.append(piece)
            if amt is not None and len(chunk) < amt:  # urllib3 fills sized reads
                chunk += self._rest.read(amt - len(chunk))
            return chunk
        if whole and self._error is not None:
            self._data = io.BytesIO()
            return self._raise()
        chunk = self._data.read(None if whole else amt)
        if chunk or amt == 0 or self._error is None or self._whole_only:
            return chunk
        return self._raise()

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def tell(self) -> int:
        return self._data.tell()

    def close(self) -> None:
        self._data = io.BytesIO()
        self._error = None
        rest, self._rest = self._rest, None
        if rest is not None:
            rest.close()
        super().close()


class _WholeReplay(io.BytesIO):
    """Raw stream of an InvokeModel body that arrived whole: its bytes, read at C speed (what
    the user reads through it is what urllib3 would have given: sized reads filled, then b"").
    Closing it spends it as closing urllib3's response does: later reads give b"" (BytesIO's
    own close would make them raise), ``closed`` says so, and the bytes are let go."""

    _spent = False

    @property
    def closed(self) -> bool:
        return self._spent

    def close(self) -> None:
        self.seek(0)
        self.truncate()
        self._spent = True


class _ReplayBody(StreamingBody):  # type: ignore[misc]
    """botocore's StreamingBody over a replay: the bytes are in memory, no socket is left to
    time out, so setting a socket timeout does nothing (as it harms nothing); a replay that
    continues with the live stream passes it on."""

    def set_socket_timeout(self, timeout: Any) -> None:
        rest = getattr(self._raw_stream, "_rest", None)
        if rest is not None:
            StreamingBody(rest, None).set_socket_timeout(timeout)


class Handler:
    """The active instrumentation: settings, telemetry and pre-counter of one instrument()."""

    def __init__(
        self,
        settings: Settings,
        telemetry: Telemetry,
        precounter: Optional[Precounter],
        on_first_call: Optional[Callable[[], None]] = None,
        extras: Optional[Extras] = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.precounter = precounter
        # gen_ai.request.top_k's type differs between the conventions: chosen once
        self._request_attributes: Callable[[Any], dict[str, Any]] = (
            families.request_attributes_integer_top_k if telemetry.schema.top_k_integer
            else families.request_attributes
        )
        # Content capture, decided once: None unless the user opted in (span and/or event).
        self._capture: Optional[content.Capture] = None
        if settings.captures_content:
            self._capture = content.Capture(
                settings.content_max_length, settings.capture_content, settings.content_events,
                telemetry.schema, telemetry.event_logger,
            )
        # Cost, quota burn, service tier, attribution, profiles, estimates (docs/cost.md)
        self.extras = extras if extras is not None else Extras(settings)
        # Run once, at the first traced call: by then every instrumentor has been loaded.
        self._on_first_call = on_first_call

    # -- the call ------------------------------------------------------------------------------
    def begin(self, client: Any, args: Any, kwargs: Any) -> Optional[Call]:
        """The call described, or None when it is not ours to trace (then call straight
        through). Nothing here awaits or blocks: both drivers start with it."""
        if len(args) >= 2:
            operation_name, params = args[0], args[1]
        else:
            operation_name = args[0] if args else kwargs.get("operation_name")
            params = kwargs.get("api_params")
        spec = OPERATIONS.get(operation_name)
        if (
            spec is None
            or (type(params) is not dict and not isinstance(params, Mapping))
            or context.get_value(INTERNAL_CALL_KEY)
            or not is_instrumentation_enabled()
        ):
            return None
        if self._on_first_call is not None:
            first, self._on_first_call = self._on_first_call, None
            try:
                first()
            except Exception:
                _logger.debug("bedrock-tokens: first-call check failed", exc_info=True)
        if spec.kind == "agent":
            if _service(client) != names.SERVICE_AGENT_RUNTIME:
                return None
            if (
                self.settings.agent_enable_trace
                and isinstance(params, dict)
                and "enableTrace" not in params
                and agents.AGENT_OPERATIONS[operation_name].traces
            ):
                # Opt-in: botocore built this dict for this call from the user's keywords, so
                # the user's own objects are untouched; the trace events reach them as well.
                params["enableTrace"] = True
        elif _service(client) != names.SERVICE_RUNTIME:
            return None
        try:
            request = self.describe(operation_name, spec, client, params)
        except Exception:
            _logger.debug("bedrock-tokens: could not describe a request", exc_info=True)
            return None
        precounter = self.precounter if spec.kind in ("invoke", "converse") else None
        return Call(self, client, request, params, precounter)

    def call(self, wrapped: Any, client: Any, args: Any, kwargs: Any) -> Any:
        """The synchronous driver (botocore)."""
        call = self.begin(client, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        call.open(call.precount())
        with call:
            result = wrapped(*args, **kwargs)
        if call.settle(result, StreamProxy):
            call.settle_body(take_body(result))
        return result

    def describe(
        self, operation_name: str, spec: OpSpec, client: Any, params: Mapping[str, Any]
    ) -> Request:
        if spec.kind == "agent":
            return self._describe_agent(operation_name, spec, client, params)
        model_id = params.get("modelId")
        raw_model = model_id if isinstance(model_id, str) else ""
        model = clean_id(raw_model)  # for telemetry; the service is sent the user's own
        info = parse_model_id(raw_model)
        family = info.family
        attrs: dict[str, Any] = {}
        body: Any = None
        if spec.kind == "invoke":
            raw = params.get("body")
            body = _parse_request_body(raw)
            if family == UNKNOWN:
                family = families.sniff_family(body)
            if body is None and isinstance(raw, (bytes, bytearray)):
                is_chat = b'"messages"' in raw  # too large to parse: the one fact we need
                operation = names.OP_CHAT if is_chat else families.invoke_operation_name(
                    None, info.is_embedding, family
                )
            else:
                operation = families.invoke_operation_name(body, info.is_embedding, family)
        elif spec.kind == "converse":
            body = params
            operation = names.OP_CHAT
        else:
            operation = names.OP_COUNT_TOKENS
        guardrail = _guardrail(spec, params)
        if isinstance(guardrail, str) and guardrail:
            attrs[names.AWS_BEDROCK_GUARDRAIL_ID] = guardrail
        if self._capture is not None and spec.kind != "count":
            attrs.update(self._capture.input_attributes(body))
        extra = NO_START
        if spec.kind != "count":
            # an async client's call runs on its event loop: a profile lookup never waits there
            wait = not type(client).__module__.startswith("aiobotocore")
            extra = self.extras.start(client, spec.kind, raw_model, params, wait)
            if extra is not NO_START:
                attrs.update(Extras.start_attributes(extra))
        address, port = _server(client)
        return Request(
            operation_name, spec, model, info, family, operation, body, clean_attributes(attrs),
            address, port, raw_model, extra=extra,
        )

    def _describe_agent(
        self, operation_name: str, spec: OpSpec, client: Any, params: Mapping[str, Any]
    ) -> Request:
        """An agent-runtime call: its ids, session and model as agents.describe finds them;
        with content capture, the agent's input text as the input messages."""
        described = agents.describe(
            operation_name, params, top_k_integer=self.telemetry.schema.top_k_integer
        )
        assert described is not None  # spec.kind == "agent" means it is in the table
        raw_model = described.model or ""
        attrs = dict(described.attributes)
        if self._capture is not None:
            attrs.update(self._capture.input_attributes(params))
        address, port = _server(client)
        model = clean_id(raw_model)
        return Request(
            operation_name, spec, model, parse_model_id(raw_model), UNKNOWN,
            described.spec.operation, None, clean_attributes(attrs), address, port, raw_model,
            clean_id(described.span_name),
        )

    def _start(self, request: Request, estimate: Optional[Estimate]) -> CallRecord:
        tel = self.telemetry
        metric_attrs = tel.metric_attributes(
            request.operation, request.model, request.address, request.port
        )
        # The sampling-relevant attributes are the metrics' base set (operation, provider,
        # model, server), built once per key: copied, never built per call.
        attrs: dict[str, Any] = dict(metric_attrs.base or {})
        if not request.model:  # the metrics say "" for a missing model id; the span, nothing
            del attrs[names.GEN_AI_REQUEST_MODEL]
        attrs.update(request.attributes)
        if request.spec.stream_key is not None:
            attrs[names.GEN_AI_REQUEST_STREAM] = True
        if self.settings.emit_legacy_system:
            attrs[names.GEN_AI_SYSTEM] = names.PROVIDER_AWS_BEDROCK
        captured: Optional[dict[str, Any]] = None
        if self._capture is not None and request.spec.kind != "count":
            captured = {k: attrs[k] for k in names.CONTENT_ATTRIBUTES if k in attrs}
            if not self._capture.on_span:  # EVENT_ONLY: content goes to the event only
                for key in captured:
                    del attrs[key]
        links = None
        if estimate is not None:
            if estimate.skipped is not None:
                attrs[names.AWS_BEDROCK_COUNT_TOKENS_SKIPPED] = estimate.skipped
            if estimate.tokens is not None:
                attrs[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] = estimate.tokens
            if estimate.span_context is not None:
                links = [Link(estimate.span_context, {
                    names.AWS_BEDROCK_LINK_RELATION: names.LINK_RELATION_PRECOUNT,
                })]
        name = request.span_name or (
            f"{request.operation} {request.model}" if request.model else request.operation
        )
        span = tel.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs, links=links)
        if request.body is not None and span.is_recording():
            # The request parameters (max tokens, temperature, ...) are for the span only:
            # not read at all for a span nobody records. Samplers see what the conventions
            # list as sampling-relevant (operation, provider, model, server), set above.
            params = self._request_attributes(request.body)
            if params:
                span.set_attributes(clean_attributes(params))
        record = CallRecord(
            tel,
            span,
            time.perf_counter(),
            metric_attrs,
            self._capture is not None,
        )
        if request.spec.kind == "agent":
            record.usage_metrics = False  # recorded per model step, never for the total
        if estimate is not None:
            record.estimate = estimate.tokens
        if request.spec.kind not in ("count", "agent"):
            extras = self.extras
            record.extras = extras
            record.extra = request.extra
            record.model = request.raw_model
            record.operation = request.operation
            record.metric_key = (request.operation, request.model, request.address, request.port)
            if extras.estimator is not None:
                record.request_body = request.body
        if captured is not None:
            record.capture = self._capture
            record.content = captured
        return record

    # -- results -------------------------------------------------------------------------------
    def settle(
        self, request: Request, record: CallRecord, result: Any, proxy: type[StreamProxy]
    ) -> Optional[_Pending]:
        """Read what the result says and end the record; or, when only the InvokeModel body
        can complete the picture, what settle_body needs once the driver has read it."""
        if not isinstance(result, dict):
            record.end()
            return None
        attrs: dict[str, Any] = {}
        meta = result.get("ResponseMetadata")
        headers: Mapping[str, Any] = {}
        if isinstance(meta, Mapping):
            request_id = meta.get("RequestId")
            if isinstance(request_id, str) and request_id:
                attrs[names.AWS_REQUEST_ID] = request_id
            found = meta.get("HTTPHeaders")
            if isinstance(found, Mapping):
                headers = found
        spec = request.spec
        if spec.kind == "agent":
            found = agents.response_attributes(request.operation_name, result)
            attrs.update(clean_attributes(found))
        elif spec.kind == "invoke":
            tier = tiers.from_invoke_response(result, headers)
            if tier is not NO_TIER:
                record.facts = ResponseFacts(tier)
        if spec.stream_key is not None:
            record.span.set_attributes(attrs)
            if not wrap_stream(
                result, spec.stream_key, record, spec.kind, request.family, self._capture,
                proxy,
            ):
                record.end()
            return None
        usage: Optional[Usage]
        if spec.kind == "invoke":
            usage = from_headers(headers)
            if self._wants_body(request, record, usage, headers, attrs):
                return _Pending(usage, attrs)
        elif spec.kind == "converse":
            usage = self._converse_result(result, attrs)
            tier = tiers.from_converse_response(result)
            ttl = ttl_breakdown_from_converse(result.get("usage"))
            if tier is not NO_TIER or ttl is not None:
                record.facts = ResponseFacts(tier, ttl)
        else:  # count; agent-runtime calls without a stream report no usage
            usage = None
            count = to_count(result.get("inputTokens"))
            if count is not None:
                attrs[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] = count
        record.end(usage, attrs)
        return None

    def _wants_body(
        self,
        request: Request,
        record: CallRecord,
        usage: Optional[Usage],
        headers: Mapping[str, Any],
        attrs: dict[str, Any],
    ) -> bool:
        """Whether the driver must read the InvokeModel body: for counts the headers lack,
        for what only the body says and someone records (finish reason, id and model on a
        recording span; content; the cache writes' TTLs, which a price table may price
        apart). Else the user's body is never touched."""
        latency = to_count(headers.get(names.H_INVOCATION_LATENCY))
        if latency is not None:
            attrs[names.AWS_BEDROCK_INVOCATION_LATENCY] = latency
        if (
            usage is None
            or usage.input is None
            or (usage.output is None and request.operation != names.OP_EMBEDDINGS)
            or self._capture is not None
        ):
            return True  # counts the headers lack, or content
        if usage.cache_write and self.extras.prices is not None:
            return True  # the cost of 5-minute and 1-hour writes may differ
        if not self.settings.parse_response_body or not record.span.is_recording():
            return False
        fields = families.FAMILIES.get(request.family, families.FAMILIES[UNKNOWN]).body
        return bool(fields.finish or fields.response_id or fields.response_model)

    def settle_body(
        self, request: Request, record: CallRecord, pending: _Pending, data: Optional[bytes]
    ) -> None:
        """End an InvokeModel record with what its body (read by the driver) adds."""
        usage, attrs = pending
        if data is not None:
            try:
                parsed = json.loads(data)
            except (ValueError, UnicodeDecodeError):
                parsed = None
            if parsed is not None:
                info = families.extract_body(request.family, parsed)
                info.add_response_attributes(attrs)
                record.facts = ResponseFacts(
                    record.facts.tier,
                    ttl_breakdown_from_anthropic(
                        parsed.get("usage") if isinstance(parsed, Mapping) else None
                    ),
                    output_images(parsed),
                    parsed if self.extras.estimator is not None else None,
                )
                if self._capture is not None:
                    attrs.update(self._capture.output_attributes(
                        content.reply_text(parsed), info.finish_reasons
                    ))
                usage = merge(usage, info.usage)
        record.end(usage, attrs)

    def _converse_result(self, result: dict[str, Any], attrs: dict[str, Any]) -> Optional[Usage]:
        stop = result.get("stopReason")
        finish = (stop,) if isinstance(stop, str) and stop else None
        if finish:
            attrs[names.GEN_AI_RESPONSE_FINISH_REASONS] = finish
        metrics = result.get("metrics")
        if isinstance(metrics, Mapping):
            latency = to_count(metrics.get("latencyMs"))
            if latency is not None:
                attrs[names.AWS_BEDROCK_CONVERSE_LATENCY] = latency
        if self._capture is not None:
            attrs.update(self._capture.output_attributes(content.reply_text(result), finish))
        return from_converse(result.get("usage"))


def take_body(result: Any) -> Optional[bytes]:
    """Read the InvokeModel body and put back one that gives the user what the original would
    have: the same bytes, the same failures at the same points, the same length check."""
    try:
        return _take_body(result)
    except Exception:
        _logger.debug("bedrock-tokens: could not read a response body", exc_info=True)
        return None


def _take_body(result: dict[str, Any]) -> Optional[bytes]:
    """Read the InvokeModel body (at most ``MAX_PARSED_RESPONSE`` bytes of it) and put back
    one that gives the user what the original would have: the same bytes, the same failures
    at the same points, the same length check. None when there is nothing to parse: no body,
    a body that did not arrive whole, or one larger than the cap (then left alone, or handed
    back as the part read followed by the live rest)."""
    body = result.get("body")
    raw = getattr(body, "_raw_stream", None)
    if not isinstance(body, StreamingBody) or raw is None:
        return None
    length = to_count(getattr(body, "_content_length", None))
    if length is not None and length > MAX_PARSED_RESPONSE:
        return None  # too large to parse: never touched
    parts: list[bytes] = []
    got = 0
    error: Optional[BaseException] = None
    whole_only = False
    over = False
    try:
        while True:  # urllib3 fills a sized read unless the body ended (or was cut)
            want = min(_BODY_CHUNK, MAX_PARSED_RESPONSE + 1 - got)
            chunk = raw.read(want)
            parts.append(chunk)
            got += len(chunk)
            if len(chunk) < want:
                break
            if got > MAX_PARSED_RESPONSE:  # no length given, and more than the cap: stop
                over = True
                break
        if not over and length is not None and got < length:
            whole_only = True  # truncated: only a whole-body read fails, and this is how
            raw.read()
    except Exception as exc:
        error = exc
    data = b"".join(parts)
    del parts
    if over:
        result["body"] = _ReplayBody(_Replay(data, None, False, raw), body._content_length)
        return None
    complete = error is None and (length is None or len(data) == length)
    # the usual case, a body that arrived whole, needs none of _Replay's failure points
    replay = _WholeReplay(data) if complete else _Replay(data, error, whole_only)
    result["body"] = _ReplayBody(replay, body._content_length)
    return data if complete else None


# -- the wrapper ------------------------------------------------------------------------------
# The active handler. None makes the wrapper a pass-through: that is what uninstrument() leaves
# behind when another package has wrapped _make_api_call on top of us and we cannot unwrap.
active: Optional[Handler] = None


def handler_for(client: Any) -> Optional[Handler]:
    """The active handler if ``client`` is a Bedrock Runtime or Agent Runtime client, else None
    (both drivers: for any other service this is one global read, one attribute lookup, one
    set lookup)."""
    handler = active
    if handler is None:
        return None
    try:
        service = client._service_model.service_name
    except AttributeError:
        return None
    return handler if service in SERVICES else None


def make_api_call_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    handler = handler_for(instance)
    if handler is None:
        return wrapped(*args, **kwargs)
    return handler.call(wrapped, instance, args, kwargs)


make_api_call_wrapper._bedrock_tokens = True  # type: ignore[attr-defined]
