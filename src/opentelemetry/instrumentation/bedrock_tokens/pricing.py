"""Prices: the user's price table, and what one call cost by it.

A price table is JSON, USD per million tokens, keyed by base model id (docs/cost.md has the
full format). The simple case stays this simple::

    {"models": {"anthropic.claude-3-5-haiku-20241022-v1:0":
        {"input": 0.8, "output": 4.0, "cache_read": 0.08, "cache_write": 1.0}}}

On top of that an entry may say what the real price list needs: ``cache_write_5m`` /
``cache_write_1h`` (cache writes per TTL), ``image`` (USD per output image), and partial
overrides by ``scopes`` (``in_region`` / ``geo`` / ``global``, from the model id's form),
``tiers`` (the service tier: ``priority`` / ``flex`` / ``reserved``; the base prices are the
``default`` tier) and ``regions`` (the client's region, which may hold its own ``tiers``).
A key may be a glob pattern (``meta.llama3-1-*``); an exact key wins, then the longest
pattern. Keys are matched against the model id as sent (so an application-inference-profile
ARN can be priced as such), then the resolved base model, then the id's own base model
(``us.`` / ``global.`` prefixes and foundation-model / inference-profile ARNs stripped).

Why the rules are what they are:

* Cost is exact or absent, like the counts. ``cost()`` returns None whenever a price that the
  call's counts need is missing, a count it needs is unknown, or the tier has no price. A
  missing scope or region override is not a missing price: the base entry is the user's
  statement of what the model costs, and the simple case must price ``us.`` ids with it.
  A tier is different: ``priority`` and ``flex`` are priced differently by design, so a
  tier the table does not list gives no cost rather than the default tier's price.
* Cached input is priced as such: reads at ``cache_read``, writes at ``cache_write`` (or per
  TTL when the response breaks them down), and only the uncached input at ``input``.
* An invalid table is one warning and no cost, never an exception: a typo in a price file
  must not take an application down, nor silently price with half a table (unknown fields
  are rejected for that reason).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from fnmatch import fnmatchcase
from importlib import resources
from typing import Any, NamedTuple, Optional, Union

from .models import parse_model_id
from .usage import Usage, to_count

_logger = logging.getLogger(__name__)

PRICES_ENV = "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRICES"
EXAMPLE_TABLE = "prices.example.json"

PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_5m",
                "cache_write_1h", "image")
SCOPES = ("in_region", "geo", "global")
TIERS = ("default", "priority", "flex", "reserved")
TTL_5M = "5m"
TTL_1H = "1h"
# Fields that document a figure and are not prices.
_META_FIELDS = frozenset({"source", "as_of", "note", "notes", "description", "name"})
_TOP_FIELDS = frozenset({"models", "burndown", "currency", "unit"}) | _META_FIELDS
_MAX_CACHED = 4096

Prices = Mapping[str, float]


class InvalidPriceTable(ValueError):
    """A price table that cannot be used; the message says where it is wrong."""


_Override = dict[str, Optional[float]]


class _Entry(NamedTuple):
    base: dict[str, float]
    scopes: dict[str, _Override]
    tiers: dict[str, _Override]
    regions: dict[str, tuple[_Override, dict[str, _Override]]]


def _price(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPriceTable(f"{where}: a price must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise InvalidPriceTable(f"{where}: a price must be finite and >= 0, got {value!r}")
    return float(value)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidPriceTable(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _prices(
    obj: Mapping[str, Any], where: str, nested: frozenset[str]
) -> dict[str, Optional[float]]:
    """The price fields of one entry or override; anything unknown is an error. ``null``
    says the price is not known there (an override then removes the base price)."""
    out: dict[str, Optional[float]] = {}
    for key, value in obj.items():
        if key in PRICE_FIELDS:
            out[key] = None if value is None else _price(value, f"{where}.{key}")
        elif key not in nested and key not in _META_FIELDS:
            raise InvalidPriceTable(f"{where}: unknown field {key!r}")
    return out


def _keyed(obj: Any, where: str, allowed: Optional[tuple[str, ...]]) -> Mapping[str, Any]:
    mapping = _object(obj, where)
    for key in mapping:
        if allowed is not None and key not in allowed:
            raise InvalidPriceTable(f"{where}: unknown key {key!r} (one of {', '.join(allowed)})")
    return mapping


def _tiers(obj: Mapping[str, Any], where: str) -> dict[str, _Override]:
    raw = obj.get("tiers")
    if raw is None:
        return {}
    tiers = _keyed(raw, f"{where}.tiers", TIERS)
    return {
        tier: _prices(_object(value, f"{where}.tiers.{tier}"), f"{where}.tiers.{tier}",
                      frozenset())
        for tier, value in tiers.items()
    }


def _entry(obj: Any, where: str) -> _Entry:
    entry = _object(obj, where)
    given = _prices(entry, where, frozenset({"scopes", "tiers", "regions"}))
    base = {key: value for key, value in given.items() if value is not None}
    scopes: dict[str, _Override] = {}
    if entry.get("scopes") is not None:
        for scope, value in _keyed(entry["scopes"], f"{where}.scopes", SCOPES).items():
            scopes[scope] = _prices(_object(value, f"{where}.scopes.{scope}"),
                                    f"{where}.scopes.{scope}", frozenset())
    regions: dict[str, tuple[_Override, dict[str, _Override]]] = {}
    if entry.get("regions") is not None:
        for region, value in _keyed(entry["regions"], f"{where}.regions", None).items():
            rwhere = f"{where}.regions.{region}"
            robj = _object(value, rwhere)
            regions[region] = (_prices(robj, rwhere, frozenset({"tiers"})), _tiers(robj, rwhere))
    return _Entry(base, scopes, _tiers(entry, where), regions)


def _is_pattern(key: str) -> bool:
    return any(ch in key for ch in "*?[")


class PriceTable:
    """A validated price table. Immutable after construction; lookups are cached."""

    def __init__(self, table: Any, source: str = "prices") -> None:
        top = _object(table, source)
        for key in top:
            if key not in _TOP_FIELDS:
                raise InvalidPriceTable(f"{source}: unknown field {key!r}")
        currency = top.get("currency", "USD")
        if currency != "USD":
            raise InvalidPriceTable(f"{source}.currency: only USD is supported, got {currency!r}")
        unit = top.get("unit", "per_million_tokens")
        if unit != "per_million_tokens":
            raise InvalidPriceTable(
                f"{source}.unit: prices are USD per million tokens, got {unit!r}"
            )
        models = _object(top.get("models"), f"{source}.models")
        self.source = source
        self._exact: dict[str, _Entry] = {}
        patterns: list[tuple[str, _Entry]] = []
        for key, value in models.items():
            if not key:
                raise InvalidPriceTable(f"{source}.models: empty model key")
            entry = _entry(value, f"{source}.models[{key!r}]")
            if _is_pattern(key):
                patterns.append((key, entry))
            else:
                self._exact[key] = entry
        # most specific first: more literal characters, then the longer key
        patterns.sort(key=lambda item: (-len(item[0].replace("*", "")), -len(item[0])))
        self._patterns = tuple(patterns)
        burndown: list[tuple[str, float]] = []
        raw_burndown = top.get("burndown")
        if raw_burndown is not None:
            for key, rate in _object(raw_burndown, f"{source}.burndown").items():
                value = _price(rate, f"{source}.burndown[{key!r}]")
                if value < 1:
                    raise InvalidPriceTable(
                        f"{source}.burndown[{key!r}]: an output burndown rate is >= 1"
                    )
                burndown.append((key, value))
        burndown.sort(key=lambda item: (-len(item[0].replace("*", "")), -len(item[0])))
        self.burndown: tuple[tuple[str, float], ...] = tuple(burndown)
        self._cache: dict[tuple[Optional[str], ...], Optional[dict[str, float]]] = {}
        self._lock = threading.Lock()

    @property
    def model_count(self) -> int:
        return len(self._exact) + len(self._patterns)

    # -- lookup ------------------------------------------------------------------------------
    def _find(self, candidates: tuple[str, ...]) -> Optional[_Entry]:
        for candidate in candidates:
            found = self._exact.get(candidate)
            if found is not None:
                return found
        for pattern, entry in self._patterns:
            if any(fnmatchcase(candidate, pattern) for candidate in candidates):
                return entry
        return None

    def knows(self, model: str, resolved: Optional[str] = None) -> bool:
        """Whether the table has an entry for this model (for ``doctor``)."""
        return self._find(_candidates(model, resolved)) is not None

    def prices_for(
        self,
        model: str,
        region: Optional[str] = None,
        tier: Optional[str] = None,
        resolved: Optional[str] = None,
    ) -> Optional[dict[str, float]]:
        """The effective prices of one model, region and tier; None if the table has none.

        Overrides apply in this order, each replacing only the fields it names: scope (from
        the id's form), tier, region, the region's tier."""
        key = (model, region, tier, resolved)
        cached = self._cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        found = self._find(_candidates(model, resolved))
        result: Optional[dict[str, float]] = None
        if found is not None:
            tier_name = tier if tier is not None else "default"
            prices = dict(found.base)
            scope = scope_of(model)
            if scope is not None and scope in found.scopes:
                _apply(prices, found.scopes[scope])
            known_tier = tier_name == "default" or tier_name in found.tiers
            _apply(prices, found.tiers.get(tier_name, {}))
            regional = found.regions.get(region) if region is not None else None
            if regional is not None:
                _apply(prices, regional[0])
                if tier_name in regional[1]:
                    known_tier = True
                    _apply(prices, regional[1][tier_name])
            result = prices if known_tier else None
        with self._lock:
            if len(self._cache) < _MAX_CACHED:
                self._cache[key] = result
        return result

    def cost(
        self,
        usage: Optional[Usage],
        model: str,
        region: Optional[str] = None,
        tier: Optional[str] = None,
        cache_ttl: Optional[Mapping[str, int]] = None,
        *,
        resolved: Optional[str] = None,
        images: Optional[int] = None,
        expect_output: bool = True,
    ) -> Optional[float]:
        """USD for one call: each count times its price / 1e6 (images: count times price).

        None when any price or count the call needs is unknown. ``expect_output`` is False
        for operations that produce no output tokens (embeddings), so a missing output count
        is not an unknown one there."""
        prices = self.prices_for(model, region, tier, resolved)
        if prices is None:
            return None
        total = 0.0
        priced = False
        if usage is not None and not usage.empty:
            uncached = uncached_input(usage)
            if uncached is None:
                return None
            if usage.output is None and expect_output:
                return None
            for count, field in (
                (uncached, "input"), (usage.output, "output"), (usage.cache_read, "cache_read")
            ):
                if count:
                    price = prices.get(field)
                    if price is None:
                        return None
                    total += count * price / 1e6
            if usage.cache_write or cache_ttl:
                for count, field in _cache_write_terms(usage.cache_write or 0, cache_ttl):
                    if count:
                        price = _field_price(prices, field)
                        if price is None:
                            return None
                        total += count * price / 1e6
            priced = True
        if images:
            price = prices.get("image")
            if price is None:
                return None
            total += images * price
            priced = True
        return total if priced else None


_MISSING = object()


def _apply(prices: dict[str, float], override: _Override) -> None:
    for field, value in override.items():
        if value is None:
            prices.pop(field, None)
        else:
            prices[field] = value


def _field_price(prices: Prices, field: str) -> Optional[float]:
    if field == "cache_write_5m":
        found = prices.get("cache_write_5m")
        return found if found is not None else prices.get("cache_write")
    return prices.get(field)


def _cache_write_terms(
    writes: int, breakdown: Optional[Mapping[str, int]]
) -> list[tuple[int, str]]:
    """Cache writes by price field. With a TTL breakdown, 1-hour writes need the 1-hour
    price (it is not the 5-minute one); what the breakdown does not cover is priced at the
    plain cache-write price."""
    if not breakdown:
        return [(writes, "cache_write")]
    five = breakdown.get(TTL_5M, 0)
    hour = breakdown.get(TTL_1H, 0)
    rest = max(writes - five - hour, 0)
    return [(five, "cache_write_5m"), (hour, "cache_write_1h"), (rest, "cache_write")]


def uncached_input(usage: Usage) -> Optional[int]:
    """Input tokens that were neither read from nor written to the cache.

    Bedrock's own input count is that figure, except for models whose Converse
    ``inputTokens`` already include the cache writes; ``total_input`` (from ``totalTokens``)
    tells the two apart, so it is used when present."""
    if usage.input is None:
        return None
    if usage.total_input is not None:
        rest = usage.total_input - (usage.cache_read or 0) - (usage.cache_write or 0)
        if 0 <= rest <= usage.input:
            return rest
    return usage.input


def scope_of(model: str) -> Optional[str]:
    """``in_region`` for a foundation model id, ``geo`` for a geographic cross-region
    profile (``us.``, ``eu.``, ``apac.``, ...), ``global`` for a global one; None when the id
    does not say (application profiles, provisioned models)."""
    info = parse_model_id(model)
    if info.kind == "foundation_model":
        return "in_region"
    if info.kind != "inference_profile":
        return None
    text = model.rsplit("/", 1)[-1] if model.startswith("arn:") else model
    return "global" if text.startswith("global.") else "geo"


def _candidates(model: str, resolved: Optional[str]) -> tuple[str, ...]:
    out = [model]
    if resolved and resolved not in out:
        out.append(resolved)
    base = parse_model_id(model).base_id
    if base and base not in out:
        out.append(base)
    return tuple(out)


def ttl_breakdown_from_converse(usage: Any) -> Optional[dict[str, int]]:
    """Converse ``usage.cacheDetails``: ``[{"ttl": "5m"|"1h", "inputTokens": n}, ...]``."""
    details = usage.get("cacheDetails") if isinstance(usage, Mapping) else None
    if not isinstance(details, list) or not details:
        return None
    out: dict[str, int] = {}
    for item in details:
        if not isinstance(item, Mapping):
            return None
        ttl = item.get("ttl")
        count = to_count(item.get("inputTokens"))
        if ttl not in (TTL_5M, TTL_1H) or count is None:
            return None  # a bad element: no breakdown rather than a partial one
        out[ttl] = out.get(ttl, 0) + count
    return out


def ttl_breakdown_from_anthropic(usage: Any) -> Optional[dict[str, int]]:
    """Anthropic Messages ``usage.cache_creation``: ``ephemeral_5m_input_tokens`` and
    ``ephemeral_1h_input_tokens``."""
    creation = usage.get("cache_creation") if isinstance(usage, Mapping) else None
    if not isinstance(creation, Mapping):
        return None
    five = to_count(creation.get("ephemeral_5m_input_tokens"))
    hour = to_count(creation.get("ephemeral_1h_input_tokens"))
    if five is None and hour is None:
        return None
    out: dict[str, int] = {}
    if five is not None:
        out[TTL_5M] = five
    if hour is not None:
        out[TTL_1H] = hour
    return out


# -- loading -----------------------------------------------------------------------------------
def load_prices(
    option: Union[str, os.PathLike[str], Mapping[str, Any], None],
    environ: Optional[Mapping[str, str]] = None,
) -> Optional[PriceTable]:
    """The price table from ``instrument(prices=...)`` (a mapping, or a path) or else the file
    named by ``OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRICES``. None when there is none or it is
    invalid (one warning naming the source and the problem). Never raises."""
    env = os.environ if environ is None else environ
    source = "instrument(prices=...)"
    try:
        if option is None:
            path = env.get(PRICES_ENV, "").strip()
            if not path:
                return None
            source = f"{PRICES_ENV}={path}"
            return PriceTable(read_table(path), source)
        if isinstance(option, Mapping):
            return PriceTable(option, source)
        if isinstance(option, (str, os.PathLike)):
            source = f"instrument(prices={os.fspath(option)!r})"
            return PriceTable(read_table(os.fspath(option)), source)
        raise InvalidPriceTable(f"expected a mapping or a path, got {type(option).__name__}")
    except InvalidPriceTable as exc:
        _logger.warning("bedrock-tokens: invalid price table (%s); cost is not recorded.", exc)
    except Exception as exc:  # unreadable file, bad JSON, anything: never the user's problem
        _logger.warning(
            "bedrock-tokens: cannot load the price table from %s (%s: %s); cost is not "
            "recorded.", source, type(exc).__name__, exc,
        )
    return None


def read_table(path: str) -> Any:
    """The JSON of a price-table file (``doctor`` validates it the same way)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def example_table_path() -> str:
    """The file of the shipped example table (the package is installed as files)."""
    return os.path.join(os.path.dirname(__file__), "data", EXAMPLE_TABLE)


def example_table() -> dict[str, Any]:
    """The example table shipped with the package (dated, sourced figures; see docs/cost.md).
    An example, not a price list to bill by: prices change."""
    package = resources.files("opentelemetry.instrumentation.bedrock_tokens")
    text = package.joinpath("data").joinpath(EXAMPLE_TABLE).read_text("utf-8")
    table: dict[str, Any] = json.loads(text)
    return table
