"""Attribution: who a call was for, as span and metric attributes, from an allowlist.

Three sources, each opt-in key by key (nothing is read unless the user names it):

* Bedrock's own request metadata: Converse ``requestMetadata`` (a map) and InvokeModel's
  ``requestMetadata`` parameter (a JSON object string, sent as the
  ``X-Amzn-Bedrock-Request-Metadata`` header) -> ``aws.bedrock.request_metadata.<key>``;
* ``projectIdentifier`` (both operations, per botocore's service model)
  -> ``aws.bedrock.project_identifier``;
* OpenTelemetry baggage in the caller's context -> ``baggage.<key>``. The prefix keeps a
  baggage key such as ``user.id`` from landing on (or overwriting) a convention attribute.

The span carries the value as sent (truncated to 256 characters, Bedrock's own limit). The
metrics carry it through a cardinality guard: per key, the first N distinct values are kept
and every later one becomes ``_OTHER``, so a user-controlled value (a tenant id taken from a
request) can never create unbounded time series.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Optional

from opentelemetry import baggage, context

from . import names

MAX_VALUE_LENGTH = 256  # botocore's RequestMetadataValueString maximum
_MAX_HEADER_JSON = 8500  # botocore's RequestMetadataJson maximum
_MAX_CACHED = 1024  # distinct raw keys remembered (then every new one is computed)
_MAX_CACHED_JSON = 1024  # longer InvokeModel metadata strings are parsed every time


class Dimensions(NamedTuple):
    """Attribution of one call: for the span (as sent) and for metrics (guarded). Both are
    tuples of (attribute, value) pairs in allowlist order, so they can key a cache."""

    span: tuple[tuple[str, str], ...]
    metric: tuple[tuple[str, str], ...]


NO_DIMENSIONS = Dimensions((), ())


class CardinalityGuard:
    """Per attribute, at most ``limit`` distinct values; the rest are ``_OTHER``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def admit(self, attribute: str, value: str) -> str:
        seen = self._seen.get(attribute)
        if seen is not None and value in seen:
            return value
        with self._lock:
            seen = self._seen.setdefault(attribute, set())
            if value in seen:
                return value
            if len(seen) >= self._limit:
                return names.ATTRIBUTION_OTHER
            seen.add(value)
            return value


def _parse_keys(keys: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for key in keys:
        key = key.strip()
        if key and key not in out:
            out.append(key)
    return tuple(out)


class Attribution:
    """The allowlists of one ``instrument()`` and their cardinality guard."""

    def __init__(
        self,
        request_metadata_keys: Iterable[str] = (),
        baggage_keys: Iterable[str] = (),
        project: bool = False,
        max_values: int = 100,
    ) -> None:
        self.request_metadata_keys = _parse_keys(request_metadata_keys)
        self.baggage_keys = _parse_keys(baggage_keys)
        self.project = project
        self.guard = CardinalityGuard(max_values)
        self._metadata_names = {
            key: names.AWS_BEDROCK_REQUEST_METADATA_PREFIX + key
            for key in self.request_metadata_keys
        }
        self._baggage_names = {
            key: names.BAGGAGE_PREFIX + key for key in self.baggage_keys
        }
        self._cache: dict[Any, Dimensions] = {}  # raw selected values -> result

    @property
    def enabled(self) -> bool:
        return bool(self.request_metadata_keys or self.baggage_keys or self.project)

    def extract(
        self, params: Mapping[str, Any], ctx: Optional[context.Context] = None
    ) -> Dimensions:
        """The call's attribution from its botocore parameters and the current baggage.

        The raw values the allowlist selects key a bounded cache of results: most calls of
        an application repeat a few tenants, and a repeated key costs a few dict reads
        instead of a JSON parse (InvokeModel), the truncation and the guard. Caching is
        exact: the guard admits a value for good, and once a key's budget is spent it stays
        spent, so a key's result never changes."""
        if not self.enabled:
            return NO_DIMENSIONS
        metadata: Any = None
        if self.request_metadata_keys:
            metadata = params.get("requestMetadata")
            if isinstance(metadata, Mapping):
                metadata = tuple(map(metadata.get, self.request_metadata_keys))
            elif isinstance(metadata, (str, bytes)) and len(metadata) > _MAX_CACHED_JSON:
                return self._extract(params, ctx)  # rare: not worth a cache slot
        project = params.get("projectIdentifier") if self.project else None
        entries: Any = None
        if self.baggage_keys:
            found = baggage.get_all(ctx)
            entries = tuple(map(found.get, self.baggage_keys)) if found else None
        key = (metadata, project, entries)
        try:
            cached = self._cache.get(key)
        except TypeError:  # an unhashable value the allowlist selected (never a string)
            return self._extract(params, ctx)
        if cached is not None:
            return cached
        result = self._extract(params, ctx)
        if len(self._cache) < _MAX_CACHED:
            self._cache[key] = result
        return result

    def _extract(self, params: Mapping[str, Any], ctx: Optional[context.Context]) -> Dimensions:
        pairs: list[tuple[str, str]] = []
        if self.request_metadata_keys:
            metadata = _request_metadata(params.get("requestMetadata"))
            if metadata:
                for key, attribute in self._metadata_names.items():
                    value = _value(metadata.get(key))
                    if value is not None:
                        pairs.append((attribute, value))
        if self.project:
            value = _value(params.get("projectIdentifier"))
            if value is not None:
                pairs.append((names.AWS_BEDROCK_PROJECT_IDENTIFIER, value))
        if self.baggage_keys:
            entries = baggage.get_all(ctx)
            if entries:
                for key, attribute in self._baggage_names.items():
                    value = _value(entries.get(key))
                    if value is not None:
                        pairs.append((attribute, value))
        if not pairs:
            return NO_DIMENSIONS
        guarded = tuple((attribute, self.guard.admit(attribute, value))
                        for attribute, value in pairs)
        return Dimensions(tuple(pairs), guarded)


def _request_metadata(raw: Any) -> Optional[Mapping[str, Any]]:
    """Converse gives a map; InvokeModel a JSON object string (the header's value)."""
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, (str, bytes)) and 0 < len(raw) <= _MAX_HEADER_JSON:
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        return parsed if isinstance(parsed, Mapping) else None
    return None


def _value(raw: Any) -> Optional[str]:
    if not isinstance(raw, str) or not raw:
        return None
    return raw[:MAX_VALUE_LENGTH]
