"""Service tier and latency mode of a call, from its request and its response.

botocore's bedrock-runtime model is the authority on where they are:

* request: InvokeModel* ``serviceTier`` and ``performanceConfigLatency`` (strings, sent as
  the ``X-Amzn-Bedrock-Service-Tier`` / ``X-Amzn-Bedrock-PerformanceConfig-Latency``
  headers); Converse* ``serviceTier.type`` and ``performanceConfig.latency``;
* response: the same two InvokeModel* headers (botocore also parses them into the result's
  ``serviceTier`` / ``performanceConfigLatency``); the Converse result's and the
  ConverseStream ``metadata`` event's ``serviceTier.type`` and ``performanceConfig.latency``.

Values are bounded to the model's enums (``ServiceTierType``: priority, default, flex,
reserved; ``PerformanceConfigLatency``: standard, optimized); anything else is ``_OTHER``, so
the tier can be a metric attribute without unbounded cardinality.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Optional

from . import names

SERVICE_TIERS = frozenset({"priority", "default", "flex", "reserved"})
LATENCY_MODES = frozenset({"standard", "optimized"})

H_SERVICE_TIER = "x-amzn-bedrock-service-tier"
H_LATENCY = "x-amzn-bedrock-performanceconfig-latency"


class TierInfo(NamedTuple):
    tier: Optional[str]
    latency: Optional[str]


NO_TIER = TierInfo(None, None)


def _info(tier: Any, latency: Any) -> TierInfo:
    if tier is None and latency is None:
        return NO_TIER  # the usual response: neither said
    found = TierInfo(_bounded(tier, SERVICE_TIERS), _bounded(latency, LATENCY_MODES))
    return NO_TIER if found == NO_TIER else found  # the shared constant says "nothing"


def _bounded(value: Any, allowed: frozenset[str]) -> Optional[str]:
    if not isinstance(value, str) or not value:
        return None
    return value if value in allowed else names.ATTRIBUTION_OTHER


def _nested(obj: Any, outer: str, inner: str) -> Any:
    found = obj.get(outer) if isinstance(obj, Mapping) else None
    return found.get(inner) if isinstance(found, Mapping) else None


def from_request(kind: str, params: Mapping[str, Any]) -> TierInfo:
    """``kind`` is the operation kind of patch.OPERATIONS: invoke | converse | count."""
    if "serviceTier" not in params and (
        "performanceConfig" not in params and "performanceConfigLatency" not in params
    ):
        return NO_TIER  # the usual call: two dict lookups
    if kind == "invoke":
        tier, latency = params.get("serviceTier"), params.get("performanceConfigLatency")
    elif kind == "converse":
        tier = _nested(params, "serviceTier", "type")
        latency = _nested(params, "performanceConfig", "latency")
    else:
        return NO_TIER
    return _info(tier, latency)


def from_invoke_response(result: Mapping[str, Any], headers: Mapping[str, Any]) -> TierInfo:
    tier = result.get("serviceTier")
    latency = result.get("performanceConfigLatency")
    if tier is None:
        tier = headers.get(H_SERVICE_TIER)
    if latency is None:
        latency = headers.get(H_LATENCY)
    return _info(tier, latency)


def from_converse_response(obj: Any) -> TierInfo:
    """A Converse result or a ConverseStream ``metadata`` event."""
    if isinstance(obj, dict) and "serviceTier" not in obj and "performanceConfig" not in obj:
        return NO_TIER  # the usual response: two dict lookups
    return _info(_nested(obj, "serviceTier", "type"), _nested(obj, "performanceConfig", "latency"))


def effective_tier(request: TierInfo, response: TierInfo) -> Optional[str]:
    """The tier that served the call: the response's when it says, else the one asked for."""
    return response.tier if response.tier is not None else request.tier


def span_attributes(request: TierInfo, response: TierInfo) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if request.tier is not None:
        attrs[names.AWS_BEDROCK_REQUEST_SERVICE_TIER] = request.tier
    if request.latency is not None:
        attrs[names.AWS_BEDROCK_REQUEST_LATENCY_MODE] = request.latency
    if response.tier is not None:
        attrs[names.AWS_BEDROCK_RESPONSE_SERVICE_TIER] = response.tier
    if response.latency is not None:
        attrs[names.AWS_BEDROCK_RESPONSE_LATENCY_MODE] = response.latency
    return attrs
