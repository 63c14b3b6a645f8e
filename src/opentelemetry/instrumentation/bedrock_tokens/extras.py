"""What issue 18 adds to a call, in two calls the flow makes: ``start`` and ``finish``.

The call flow knows nothing of prices, tiers, tenants or profiles. It asks ``Extras.start()``
when it describes a request (request tier and latency mode, attribution, the resolved profile,
the region) and ``Extras.finish()`` when the record ends (response tier, cost, quota burn,
images, estimates), and adds what they return to the span and the metrics. With nothing
configured, ``start`` returns one shared constant and ``finish`` only computes quota burn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Optional

from . import names
from .attribution import NO_DIMENSIONS, Attribution, Dimensions
from .config import Settings
from .costing import Accountant, CallCost
from .estimate import Estimator, load_estimator, run
from .pricing import load_prices
from .profiles import ProfileResolver
from .tiers import NO_TIER, TierInfo, effective_tier, from_request, span_attributes
from .usage import Usage

MetricExtra = tuple[tuple[str, str], ...]


class Start(NamedTuple):
    tier: TierInfo  # as asked for
    dimensions: Dimensions
    resolved: Optional[str]  # the base model of an application inference profile
    region: Optional[str]


NO_START = Start(NO_TIER, NO_DIMENSIONS, None, None)


class ResponseFacts(NamedTuple):
    """What the response said that the figures need, set on the record before it ends (by
    the flow for a whole response, by the stream proxy for a stream)."""

    tier: TierInfo = NO_TIER
    cache_ttl: Optional[Mapping[str, int]] = None  # cache writes by TTL
    images: Optional[int] = None
    response_body: Any = None  # the parsed body, kept only when an estimator needs it


NO_FACTS = ResponseFacts()


class Finish(NamedTuple):
    attributes: dict[str, Any]  # for the span
    # The tier, for the token metrics (an enum: bounded). Attribution goes on the counters
    # only: a histogram multiplies every tenant's series by its bucket count.
    metric_extra: MetricExtra
    counter_extra: MetricExtra  # the tier and the guarded attribution
    cost: Optional[float]
    quota_tokens: Optional[float]
    images: Optional[int]


class Extras:
    """Prices, attribution, profile resolution and the estimator of one ``instrument()``."""

    def __init__(self, settings: Settings) -> None:
        self.prices = load_prices(settings.prices, environ={})  # config read the variable
        self.accountant = Accountant(self.prices)
        self.attribution = Attribution(
            settings.request_metadata_keys, settings.baggage_keys,
            settings.project_identifier, settings.attribution_max_values,
        )
        self.resolver = (
            ProfileResolver(settings.resolve_profiles_timeout)
            if settings.resolve_profiles else None
        )
        self.estimator: Optional[Estimator] = load_estimator(
            settings.estimator, settings.estimator_tokenizer
        )

    # -- before the call ---------------------------------------------------------------------
    def start(
        self, client: Any, kind: str, model: str, params: Mapping[str, Any], wait: bool = True
    ) -> Start:
        """``kind`` is the operation kind (invoke | converse | count). ``wait`` is False on an
        event loop: a profile lookup is then only read from the cache, never waited for."""
        tier = from_request(kind, params)
        dimensions = self.attribution.extract(params) if self.attribution.enabled else (
            NO_DIMENSIONS
        )
        resolver = self.resolver
        resolved = None
        if resolver is not None:
            resolved = resolver.resolve(client, model) if wait else resolver.cached(client, model)
        region = _region(client) if self.prices is not None else None
        if tier is NO_TIER and dimensions is NO_DIMENSIONS and resolved is None and (
            region is None
        ):
            return NO_START
        return Start(tier, dimensions, resolved, region)

    @staticmethod
    def start_attributes(start: Start) -> Iterable[tuple[str, Any]]:
        """Span attributes known before the call (so samplers and tail-based rules see them),
        as (name, value) pairs for ``dict.update``."""
        if start is NO_START:
            return ()
        if start.tier is NO_TIER and start.resolved is None:
            return start.dimensions.span  # the usual case: already pairs, nothing to build
        attrs: dict[str, Any] = span_attributes(start.tier, NO_TIER)
        attrs.update(start.dimensions.span)
        if start.resolved is not None:
            attrs[names.AWS_BEDROCK_RESOLVED_MODEL] = start.resolved
        return attrs.items()

    def precount_bounds(
        self, start: Start, model: str, estimate: Optional[int], max_tokens: Optional[int]
    ) -> CallCost:
        """The hook's upper bounds: pre-counted input plus ``max_tokens`` of output."""
        return self.accountant.upper_bounds(
            model, estimate, max_tokens,
            resolved=start.resolved, region=start.region, tier=start.tier.tier,
        )

    # -- at the end --------------------------------------------------------------------------
    def finish(
        self,
        start: Start,
        model: str,
        operation: str,
        usage: Optional[Usage],
        response_tier: TierInfo = NO_TIER,
        cache_ttl: Optional[Mapping[str, int]] = None,
        images: Optional[int] = None,
        request_body: Any = None,
        response_body: Any = None,
        response_has_model: bool = True,
    ) -> Finish:
        tier = effective_tier(start.tier, response_tier)
        has_counts = usage is not None and not usage.empty
        figures = self.accountant.account(
            model, usage if has_counts else None,
            resolved=start.resolved, region=start.region, tier=tier, cache_ttl=cache_ttl,
            images=images, expect_output=operation != names.OP_EMBEDDINGS,
        )
        attrs: dict[str, Any] = {}
        if response_tier is not NO_TIER:
            attrs.update(span_attributes(NO_TIER, response_tier))
        if figures.cost is not None:
            attrs[names.AWS_BEDROCK_USAGE_COST] = figures.cost
        if figures.quota_tokens is not None:
            attrs[names.AWS_BEDROCK_USAGE_QUOTA_TOKENS] = figures.quota_tokens
        if images is not None:
            attrs[names.AWS_BEDROCK_USAGE_OUTPUT_IMAGES] = images
        if start.resolved is not None and not response_has_model:
            attrs[names.GEN_AI_RESPONSE_MODEL] = start.resolved
        if self.estimator is not None and not has_counts:
            found = run(self.estimator, start.resolved or model, request_body, response_body)
            if found is not None:
                if found.input is not None:
                    attrs[names.AWS_BEDROCK_USAGE_ESTIMATED_INPUT_TOKENS] = found.input
                if found.output is not None:
                    attrs[names.AWS_BEDROCK_USAGE_ESTIMATED_OUTPUT_TOKENS] = found.output
        extra: MetricExtra = () if tier is None else ((names.AWS_BEDROCK_SERVICE_TIER, tier),)
        dims = start.dimensions.metric
        return Finish(attrs, extra, (*extra, *dims) if dims else extra, figures.cost,
                      figures.quota_tokens, images)

    def unpriced_models(self) -> list[str]:
        return self.accountant.unpriced_models()


def _region(client: Any) -> Optional[str]:
    try:
        region = client.meta.region_name
    except AttributeError:
        return None
    return region if isinstance(region, str) else None
