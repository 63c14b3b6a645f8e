"""One place turns a call's counts into what it cost and what it took from the quota.

The call record asks ``Accountant.account()`` once, at the end of a call, with the facts the
flow gathered (model as sent and as resolved, region, tier, counts, cache-write TTLs, images);
the blocking pre-count asks ``upper_bounds()`` for the hook. Both are pure lookups over
immutable tables, cached per distinct model, so the per-call cost is a few dict reads.

It also remembers (bounded) the models that were called but that the price table does not
know, for ``doctor``: a dashboard that silently shows no cost for half the traffic is the
failure this makes visible.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import NamedTuple, Optional

from .pricing import PriceTable
from .quota import burndown_rate, quota_burn, quota_burn_upper_bound
from .usage import Usage

_MAX_UNPRICED = 256
_MAX_RATES = 4096


class CallCost(NamedTuple):
    cost: Optional[float]  # USD
    quota_tokens: Optional[float]


NO_COST = CallCost(None, None)


class Accountant:
    def __init__(self, prices: Optional[PriceTable]) -> None:
        self.prices = prices
        self._overrides = prices.burndown if prices is not None else ()
        self._unpriced: dict[str, None] = {}
        self._rates: dict[tuple[str, Optional[str]], float] = {}
        self._lock = threading.Lock()

    def rate(self, model: str, resolved: Optional[str] = None) -> float:
        """The model's output burndown rate, matched once per distinct model."""
        key = (model, resolved)
        found = self._rates.get(key)
        if found is None:
            found = burndown_rate(model, resolved, self._overrides)
            if len(self._rates) < _MAX_RATES:
                self._rates[key] = found
        return found

    def account(
        self,
        model: str,
        usage: Optional[Usage],
        *,
        resolved: Optional[str] = None,
        region: Optional[str] = None,
        tier: Optional[str] = None,
        cache_ttl: Optional[Mapping[str, int]] = None,
        images: Optional[int] = None,
        expect_output: bool = True,
    ) -> CallCost:
        burn = quota_burn(usage, self.rate(model, resolved), expect_output)
        prices = self.prices
        if prices is None:
            return CallCost(None, burn)
        cost = prices.cost(
            usage, model, region, tier, cache_ttl,
            resolved=resolved, images=images, expect_output=expect_output,
        )
        if cost is None and not prices.knows(model, resolved):
            self._note_unpriced(resolved or model)
        return CallCost(cost, burn)

    def upper_bounds(
        self,
        model: str,
        input_tokens: Optional[int],
        max_tokens: Optional[int],
        *,
        resolved: Optional[str] = None,
        region: Optional[str] = None,
        tier: Optional[str] = None,
    ) -> CallCost:
        """The most a call can cost and burn: its pre-counted input plus ``max_tokens`` of
        output (no cache discount assumed). None for each without both figures."""
        burn = quota_burn_upper_bound(input_tokens, max_tokens, self.rate(model, resolved))
        if self.prices is None or input_tokens is None or max_tokens is None:
            return CallCost(None, burn)
        bound = Usage(input_tokens, max_tokens, None, None, "estimate")
        return CallCost(self.prices.cost(bound, model, region, tier, resolved=resolved), burn)

    def _note_unpriced(self, model: str) -> None:
        if model in self._unpriced:
            return
        with self._lock:
            if len(self._unpriced) < _MAX_UNPRICED:
                self._unpriced[model] = None

    def unpriced_models(self) -> list[str]:
        """Models called since ``instrument()`` that the price table has no entry for."""
        with self._lock:
            return sorted(self._unpriced)
