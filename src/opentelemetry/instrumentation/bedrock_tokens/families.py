"""Per-family knowledge of InvokeModel bodies and stream chunks, as a table of JSON paths.

Adding a family is adding a row: where its body (and its stream chunks) carry the input and
output counts, the cache counts, the finish reason, the response id and model. A path is a
tuple of keys; ``"*"`` walks every element of a list (counts found that way are summed,
finish reasons collected). Nothing here estimates: a family whose body has no counts simply
has no count paths, and the headers or ``invocationMetrics`` are then the only source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Optional, Union

from . import names
from .models import UNKNOWN
from .usage import Usage, from_invocation_metrics, merge, to_count

Path = tuple[Union[str, int], ...]
Paths = tuple[Path, ...]


class Fields(NamedTuple):
    input: Paths = ()
    output: Paths = ()
    cache_read: Paths = ()
    cache_write: Paths = ()
    finish: Paths = ()
    response_id: Paths = ()
    response_model: Paths = ()


class FamilySpec(NamedTuple):
    body: Fields
    stream: Fields


class BodyInfo(NamedTuple):
    usage: Optional[Usage]
    finish_reasons: Optional[tuple[str, ...]]
    response_id: Optional[str]
    response_model: Optional[str]

    def add_response_attributes(self, attrs: dict[str, Any]) -> None:
        """The ``gen_ai.response.*`` attributes this response has."""
        if self.finish_reasons:
            attrs[names.GEN_AI_RESPONSE_FINISH_REASONS] = self.finish_reasons
        if self.response_id:
            attrs[names.GEN_AI_RESPONSE_ID] = self.response_id
        if self.response_model:
            attrs[names.GEN_AI_RESPONSE_MODEL] = self.response_model


_ANTHROPIC = FamilySpec(
    body=Fields(
        input=(("usage", "input_tokens"),),
        output=(("usage", "output_tokens"),),
        cache_read=(("usage", "cache_read_input_tokens"),),
        cache_write=(("usage", "cache_creation_input_tokens"),),
        finish=(("stop_reason",),),
        response_id=(("id",),),
        response_model=(("model",),),
    ),
    stream=Fields(
        input=(("message", "usage", "input_tokens"),),
        output=(("usage", "output_tokens"),),  # message_delta, cumulative
        cache_read=(("message", "usage", "cache_read_input_tokens"),),
        cache_write=(("message", "usage", "cache_creation_input_tokens"),),
        finish=(("delta", "stop_reason"), ("stop_reason",)),  # messages / legacy completion
        response_id=(("message", "id"),),
        response_model=(("message", "model"),),
    ),
)

_NOVA = FamilySpec(
    body=Fields(
        input=(("usage", "inputTokens"),),
        output=(("usage", "outputTokens"),),
        cache_read=(("usage", "cacheReadInputTokenCount"),),
        cache_write=(("usage", "cacheWriteInputTokenCount"),),
        finish=(("stopReason",),),
    ),
    stream=Fields(
        input=(("metadata", "usage", "inputTokens"),),
        output=(("metadata", "usage", "outputTokens"),),
        cache_read=(("metadata", "usage", "cacheReadInputTokenCount"),),
        cache_write=(("metadata", "usage", "cacheWriteInputTokenCount"),),
        finish=(("messageStop", "stopReason"),),
    ),
)

_TITAN_TEXT = FamilySpec(
    body=Fields(
        input=(("inputTextTokenCount",),),
        output=(("results", "*", "tokenCount"),),
        finish=(("results", "*", "completionReason"),),
    ),
    stream=Fields(
        input=(("inputTextTokenCount",),),
        output=(("totalOutputTextTokenCount",),),
        finish=(("completionReason",),),
    ),
)

_TITAN_EMBED = FamilySpec(body=Fields(input=(("inputTextTokenCount",),)), stream=Fields())

_LLAMA_FIELDS = Fields(
    input=(("prompt_token_count",),),
    output=(("generation_token_count",),),
    finish=(("stop_reason",),),
)
_LLAMA = FamilySpec(body=_LLAMA_FIELDS, stream=_LLAMA_FIELDS)

_COHERE_TEXT = FamilySpec(
    body=Fields(finish=(("generations", "*", "finish_reason"),), response_id=(("id",),)),
    stream=Fields(finish=(("finish_reason",),)),
)

_COHERE_CHAT = FamilySpec(
    body=Fields(
        input=(("meta", "billed_units", "input_tokens"),),
        output=(("meta", "billed_units", "output_tokens"),),
        finish=(("finish_reason",),),
        response_id=(("response_id",),),
    ),
    stream=Fields(
        input=(("response", "meta", "billed_units", "input_tokens"),),
        output=(("response", "meta", "billed_units", "output_tokens"),),
        finish=(("finish_reason",),),
        response_id=(("response", "response_id"),),
    ),
)

_COHERE_EMBED = FamilySpec(body=Fields(response_id=(("id",),)), stream=Fields())

_MISTRAL_FIELDS = Fields(
    finish=(("outputs", "*", "stop_reason"), ("choices", "*", "stop_reason")),
)
_MISTRAL = FamilySpec(body=_MISTRAL_FIELDS, stream=_MISTRAL_FIELDS)

_OPENAI_FIELDS = Fields(
    input=(("usage", "prompt_tokens"),),
    output=(("usage", "completion_tokens"),),
    finish=(("choices", "*", "finish_reason"),),
    response_id=(("id",),),
    response_model=(("model",),),
)
_OPENAI = FamilySpec(body=_OPENAI_FIELDS, stream=_OPENAI_FIELDS)  # gpt-oss and AI21 Jamba

_DEEPSEEK_FIELDS = Fields(finish=(("choices", "*", "stop_reason"),))
_DEEPSEEK = FamilySpec(body=_DEEPSEEK_FIELDS, stream=_DEEPSEEK_FIELDS)

# For ids nothing identifies (imported models, unknown vendors): only shapes whose key names are
# unambiguous. These are the service's own exact figures, not estimates.
_GENERIC_FIELDS = Fields(
    input=(("usage", "input_tokens"), ("usage", "inputTokens"), ("usage", "prompt_tokens"),
           ("prompt_token_count",), ("inputTextTokenCount",)),
    output=(("usage", "output_tokens"), ("usage", "outputTokens"), ("usage", "completion_tokens"),
            ("generation_token_count",)),
    cache_read=(("usage", "cache_read_input_tokens"), ("usage", "cacheReadInputTokenCount")),
    cache_write=(("usage", "cache_creation_input_tokens"), ("usage", "cacheWriteInputTokenCount")),
    finish=(("stop_reason",), ("stopReason",), ("choices", "*", "finish_reason"),
            ("choices", "*", "stop_reason"), ("outputs", "*", "stop_reason")),
    response_id=(("id",),),
    response_model=(("model",),),
)
_GENERIC = FamilySpec(body=_GENERIC_FIELDS, stream=_GENERIC_FIELDS)

FAMILIES: dict[str, FamilySpec] = {
    "anthropic": _ANTHROPIC,
    "nova": _NOVA,
    "titan_text": _TITAN_TEXT,
    "titan_embed": _TITAN_EMBED,
    "llama": _LLAMA,
    "cohere_text": _COHERE_TEXT,
    "cohere_chat": _COHERE_CHAT,
    "cohere_embed": _COHERE_EMBED,
    "mistral": _MISTRAL,
    "jamba": _OPENAI,
    "deepseek": _DEEPSEEK,
    "openai": _OPENAI,
    UNKNOWN: _GENERIC,
}

# Request-body keys that identify a family when the model id cannot (opaque ARNs). Ordered.
_SNIFF: tuple[tuple[str, str], ...] = (
    ("anthropic_version", "anthropic"),
    ("schemaVersion", "nova"),
    ("textGenerationConfig", "titan_text"),
    ("max_gen_len", "llama"),
    ("chat_history", "cohere_chat"),
    ("texts", "cohere_embed"),
    ("inputText", "titan_embed"),
)


def sniff_family(body: Any) -> str:
    """The family a request body's own shape names, or ``unknown``."""
    if isinstance(body, Mapping):
        for key, family in _SNIFF:
            if key in body:
                return family
    return UNKNOWN


_MISSING = object()


def _get(obj: Any, path: Path) -> Any:
    """The value at a path without ``"*"``, or ``_MISSING``; allocates nothing."""
    for key in path:
        if isinstance(obj, dict):
            obj = obj.get(key, _MISSING)
            if obj is _MISSING:
                return _MISSING
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return _MISSING
    return obj


def _values(obj: Any, path: Path) -> list[Any]:
    """Every value at ``path`` (more than one only through ``"*"``)."""
    if "*" not in path:
        found = _get(obj, path)
        return [] if found is _MISSING else [found]
    current = [obj]
    for key in path:
        nxt: list[Any] = []
        for item in current:
            if key == "*":
                if isinstance(item, list):
                    nxt.extend(item)
            elif isinstance(item, Mapping):
                if key in item:
                    nxt.append(item[key])
            elif isinstance(item, list) and isinstance(key, int) and -len(item) <= key < len(item):
                nxt.append(item[key])
        current = nxt
        if not current:
            break
    return current


def _count(obj: Any, paths: Paths) -> Optional[int]:
    for path in paths:
        if "*" not in path:  # the common case: no list walk, nothing allocated
            value = _get(obj, path)
            if value is _MISSING:
                continue
            return to_count(value)
        found = _values(obj, path)
        if not found:
            continue
        counts = [to_count(v) for v in found]
        if any(c is None for c in counts):
            return None  # one bad value makes the whole figure inexact
        return to_count(sum(c for c in counts if c is not None))  # None beyond 64 bits
    return None


def _strings(obj: Any, paths: Paths) -> Optional[tuple[str, ...]]:
    for path in paths:
        if "*" not in path:
            value = _get(obj, path)
            if isinstance(value, str) and value:
                return (value,)
            continue
        found = [v for v in _values(obj, path) if isinstance(v, str) and v]
        if found:
            return tuple(found)
    return None


def _first_string(obj: Any, paths: Paths) -> Optional[str]:
    found = _strings(obj, paths)
    return found[0] if found else None


def extract(obj: Any, fields: Fields, source: str) -> BodyInfo:
    """Apply one family's field paths to one parsed JSON object."""
    inp = _count(obj, fields.input)
    out = _count(obj, fields.output)
    read = _count(obj, fields.cache_read)
    write = _count(obj, fields.cache_write)
    found = inp is not None or out is not None or read is not None or write is not None
    return BodyInfo(
        Usage(inp, out, read, write, source) if found else None,
        _strings(obj, fields.finish),
        _first_string(obj, fields.response_id),
        _first_string(obj, fields.response_model),
    )


def extract_body(family: str, body: Any) -> BodyInfo:
    """A non-streamed InvokeModel response body."""
    return extract(body, FAMILIES.get(family, _GENERIC).body, "body")


def extract_stream_chunks(family: str, chunks: list[Any]) -> tuple[Optional[Usage], BodyInfo]:
    """The few stream chunks kept by the accumulator, parsed, in stream order.

    Returns the ``invocationMetrics`` usage (most trusted) and what the family's own in-stream
    fields say; later chunks override earlier ones (output counts are cumulative).
    """
    fields = FAMILIES.get(family, _GENERIC).stream
    metrics: Optional[Usage] = None
    usage: Optional[Usage] = None
    finish: Optional[tuple[str, ...]] = None
    rid: Optional[str] = None
    model: Optional[str] = None
    for chunk in chunks:
        if not isinstance(chunk, Mapping):
            continue
        found = from_invocation_metrics(chunk.get(names.INVOCATION_METRICS_KEY))
        if found is not None:
            metrics = found
        info = extract(chunk, fields, "stream_body")
        usage = merge(info.usage, usage)
        finish = info.finish_reasons or finish
        rid = rid or info.response_id
        model = model or info.response_model
    return metrics, BodyInfo(usage, finish, rid, model)


def invocation_latencies(chunk: Any) -> tuple[Optional[int], Optional[int]]:
    """(invocationLatency, firstByteLatency) in ms from a chunk's invocationMetrics."""
    metrics = chunk.get(names.INVOCATION_METRICS_KEY) if isinstance(chunk, Mapping) else None
    if not isinstance(metrics, Mapping):
        return None, None
    return to_count(metrics.get("invocationLatency")), to_count(metrics.get("firstByteLatency"))


# --- Request side --------------------------------------------------------------------------

_REQUEST_PATHS: tuple[tuple[str, Paths], ...] = (
    (names.GEN_AI_REQUEST_MAX_TOKENS, (
        ("max_tokens",), ("max_gen_len",), ("maxTokens",), ("max_new_tokens",),
        ("textGenerationConfig", "maxTokenCount"), ("inferenceConfig", "max_new_tokens"),
        ("inferenceConfig", "maxTokens"))),
    (names.GEN_AI_REQUEST_TEMPERATURE, (
        ("temperature",), ("textGenerationConfig", "temperature"),
        ("inferenceConfig", "temperature"))),
    (names.GEN_AI_REQUEST_TOP_P, (
        ("top_p",), ("topP",), ("p",), ("textGenerationConfig", "topP"),
        ("inferenceConfig", "top_p"), ("inferenceConfig", "topP"))),
    (names.GEN_AI_REQUEST_TOP_K, (
        ("top_k",), ("topK",), ("k",), ("inferenceConfig", "top_k"), ("inferenceConfig", "topK"))),
    (names.GEN_AI_REQUEST_STOP_SEQUENCES, (
        ("stop_sequences",), ("stopSequences",), ("stop",),
        ("textGenerationConfig", "stopSequences"), ("inferenceConfig", "stopSequences"),
        ("inferenceConfig", "stop_sequences"))),
)
_FLOAT_ATTRS = frozenset(
    {names.GEN_AI_REQUEST_TEMPERATURE, names.GEN_AI_REQUEST_TOP_P, names.GEN_AI_REQUEST_TOP_K}
)

AttrValue = Union[str, bool, int, float, tuple[str, ...]]


_SEQUENCE, _FLOAT, _COUNT = 0, 1, 2
# Per attribute: its kind and its paths as (first key, rest of the path): most bodies lack the
# first key of most paths, and one dict lookup tells.
_REQUEST_TABLE: tuple[tuple[str, int, tuple[tuple[str, Path], ...]], ...] = tuple(
    (
        name,
        _SEQUENCE if name == names.GEN_AI_REQUEST_STOP_SEQUENCES
        else _FLOAT if name in _FLOAT_ATTRS else _COUNT,
        tuple((str(path[0]), path[1:]) for path in paths),
    )
    for name, paths in _REQUEST_PATHS
)


def request_attributes(body: Any) -> dict[str, AttrValue]:
    """Request parameters (max tokens, temperature, ...) from an InvokeModel or Converse body."""
    attrs: dict[str, AttrValue] = {}
    if not isinstance(body, Mapping):
        return attrs
    get = body.get if isinstance(body, dict) else None
    for name, kind, paths in _REQUEST_TABLE:
        for head, rest in paths:
            value = get(head, _MISSING) if get is not None else _get(body, (head,))
            if value is _MISSING:
                continue
            if rest:
                value = _get(value, rest)
                if value is _MISSING:
                    continue
            if kind == _SEQUENCE:
                if isinstance(value, str):
                    attrs[name] = (value,)
                elif isinstance(value, list) and all(isinstance(s, str) for s in value):
                    attrs[name] = tuple(value)
            elif kind == _FLOAT:
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    attrs[name] = float(value)
            else:
                count = to_count(value)
                if count is not None:
                    attrs[name] = count
            break
    return attrs


def request_max_tokens(body: Any) -> Optional[int]:
    """``gen_ai.request.max_tokens`` of a request body, read as ``request_attributes`` does."""
    found = request_attributes(body).get(names.GEN_AI_REQUEST_MAX_TOKENS)
    return found if isinstance(found, int) else None


def request_attributes_integer_top_k(body: Any) -> dict[str, AttrValue]:
    """``request_attributes`` with ``gen_ai.request.top_k`` as the latest conventions type it
    (int, #217): an integral value as an int, any other left out."""
    attrs = request_attributes(body)
    top_k = attrs.get(names.GEN_AI_REQUEST_TOP_K)
    if isinstance(top_k, float):
        if top_k.is_integer():
            attrs[names.GEN_AI_REQUEST_TOP_K] = int(top_k)
        else:
            del attrs[names.GEN_AI_REQUEST_TOP_K]
    return attrs


def invoke_operation_name(body: Any, is_embedding: bool, family: str) -> str:
    """chat / text_completion / embeddings, by what the InvokeModel call is."""
    if is_embedding or family in ("titan_embed", "cohere_embed"):
        return names.OP_EMBEDDINGS
    if isinstance(body, Mapping):
        if "messages" in body:
            return names.OP_CHAT
        if "prompt" in body or "inputText" in body:
            return names.OP_TEXT_COMPLETION
    return names.OP_CHAT
