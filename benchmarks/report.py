"""Turn a benchmark run (``run.Results``) into BENCHMARKS.md. Standard library only.

Conventions used in every table:

- a per-call figure is the median of every timed value of that configuration, with the
  smallest and largest value in brackets;
- an added cost is ``q(config) - q(uninstrumented)`` where ``q`` is the 10th percentile of all
  timed values: load from other processes only ever adds time, so a low percentile estimates
  the undisturbed cost far more stably than the median, which one busy round can move by more
  than the overhead being measured. Its bracket is the smallest and largest of the same
  difference taken round by round (both measured in the same round, so paired);
- ratios are between added costs; pre-count figures, whose target is about the median call,
  use medians;
- in-process figures are CPU time of the worker process, loopback figures wall time.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any, Optional

BASE = "uninstrumented"
OURS = "ours"
FLOOR = "floor"
WITH_CONTRIB = "ours+contrib"
CONTRIB = "contrib"
FLOOR_OFF = "floor-sampled-out"
OURS_OFF = "ours-sampled-out"
NO_CHUNK = "ours-no-chunk-timing"
STREAM_OPS = (("invoke_stream", "InvokeModelWithResponseStream"),
              ("converse_stream", "ConverseStream"))
AIO = "aio_"  # aiobotocore workloads: the sync workload's key with this prefix
AIO_STREAM_OPS = tuple((AIO + prefix, op) for prefix, op in STREAM_OPS)


def _label(prefix: str, op: str) -> str:
    return f"aiobotocore {op}" if prefix.startswith(AIO) else op
BEDROCK_CALLS = ("invoke_headers", "invoke_body", "invoke_large", "converse", "count_tokens")


class Stats:
    """Access to one run's timings, in seconds per call."""

    def __init__(self, results: Any) -> None:
        self.r = results
        self.t: dict[str, dict[str, dict[str, list[float]]]] = results.timings

    def rounds(self, config: str, bench: str) -> dict[str, list[float]]:
        return self.t.get(config, {}).get(bench, {})

    def values(self, config: str, bench: str) -> list[float]:
        return [v for vs in self.rounds(config, bench).values() for v in vs]

    def median(self, config: str, bench: str) -> Optional[float]:
        vs = self.values(config, bench)
        return statistics.median(vs) if vs else None

    def estimate(self, config: str, bench: str) -> Optional[float]:
        vs = self.values(config, bench)
        return quantile(vs) if vs else None

    def added(self, config: str, bench: str, base: str = BASE
              ) -> Optional[tuple[float, float, float]]:
        """(difference of the estimates, smallest and largest per-round difference)."""
        mc, mb = self.estimate(config, bench), self.estimate(base, bench)
        if mc is None or mb is None:
            return None
        rc, rb = self.rounds(config, bench), self.rounds(base, bench)
        per = [quantile(rc[k]) - quantile(rb[k]) for k in rc if k in rb and rc[k] and rb[k]]
        return mc - mb, min(per, default=mc - mb), max(per, default=mc - mb)


ESTIMATE_QUANTILE = 0.1


def quantile(values: Sequence[float], q: float = ESTIMATE_QUANTILE) -> float:
    """The ``q`` quantile by linear interpolation between the closest ranks."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# -- formatting ---------------------------------------------------------------------------------
def us(seconds: Optional[float], signed: bool = False) -> str:
    if seconds is None:
        return "n/a"
    v = seconds * 1e6
    text = f"{v:+.1f}" if signed else f"{v:.1f}"
    if abs(v) >= 100:
        text = f"{v:+.0f}" if signed else f"{v:.0f}"
    return text


def ms(seconds: Optional[float], signed: bool = False) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1e3:+.2f}" if signed else f"{seconds * 1e3:.2f}"


def ratio(a: Optional[float], b: Optional[float]) -> str:
    if a is None or b is None or b <= 0:
        return "n/a"
    return f"{a / b:.2f}"


def times(a: Optional[float], b: Optional[float]) -> str:
    found = ratio(a, b)
    return "n/a (floor within noise of zero)" if found == "n/a" else f"{found}x"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(s: Stats, config: str, bench: str) -> str:
    vs = s.values(config, bench)
    if not vs:
        return "n/a"
    return f"{us(statistics.median(vs))} ({us(min(vs))}..{us(max(vs))})"


def _added_cell(s: Stats, config: str, bench: str, unit: str = "us") -> str:
    found = s.added(config, bench)
    base = s.estimate(BASE, bench)
    if found is None or base is None:
        return "n/a"
    fmt = us if unit == "us" else ms
    mid, lo, hi = found
    return f"{fmt(mid, True)} ({mid / base * 100:+.0f}%) [{fmt(lo, True)}, {fmt(hi, True)}]"


# -- stream arithmetic --------------------------------------------------------------------------
class Streams:
    """Fixed and per-event costs from streams of several lengths."""

    def __init__(self, s: Stats, short: dict[str, int], medium: int) -> None:
        self.s, self.short, self.medium = s, short, medium
        self.segments: dict[str, dict[str, dict[str, list[float]]]] = getattr(
            s.r, "segments", {}) or {}
        self.segment = int(s.r.meta.get("segment", 1000))

    def tail(self, config: str, prefix: str, events: int) -> Optional[float]:
        """CPU seconds per event over the last tenth of the stream (at least five segments,
        pooled over rounds; the estimate quantile of them): the marginal cost of an event at
        that length."""
        rounds = self.segments.get(config, {}).get(self.key(prefix, events), {})
        found: list[float] = []
        for marks in rounds.values():
            found += marks[-max(5, len(marks) // 10):]
        return quantile(found) / self.segment if found else None

    def key(self, prefix: str, events: int) -> str:
        return f"{prefix}@{events}"

    def lengths(self, prefix: str) -> list[int]:
        found = set()
        for per in self.s.t.values():
            for bench in per:
                if bench.startswith(prefix + "@") and not bench.endswith(".wall"):
                    found.add(int(bench.split("@", 1)[1]))
        return sorted(found)

    def added_at(self, config: str, prefix: str, events: int) -> Optional[float]:
        found = self.s.added(config, self.key(prefix, events))
        return found[0] if found else None

    def per_event(self, config: str, prefix: str, op: str, events: int) -> Optional[float]:
        """Added seconds per event at ``events``: the marginal cost from the stream's last
        segments where it was timed per segment, else the slope from the short stream."""
        a_tail, b_tail = self.tail(config, prefix, events), self.tail(BASE, prefix, events)
        if a_tail is not None and b_tail is not None:
            return a_tail - b_tail
        short = self.short[op]
        a, b = self.added_at(config, prefix, short), self.added_at(config, prefix, events)
        if a is None or b is None or events == short:
            return None
        return (b - a) / (events - short)

    def base_per_event(self, prefix: str, op: str) -> Optional[float]:
        short = self.short[op]
        a = self.s.estimate(BASE, self.key(prefix, short))
        b = self.s.estimate(BASE, self.key(prefix, self.medium))
        return None if a is None or b is None else (b - a) / (self.medium - short)

    def fixed(self, config: str, prefix: str, op: str) -> Optional[float]:
        short = self.short[op]
        a = self.added_at(config, prefix, short)
        slope = self.per_event(config, prefix, op, self.medium)
        return None if a is None or slope is None else a - short * slope


# -- sections -----------------------------------------------------------------------------------
def _configs(res: Any, names: Iterable[str]) -> list[str]:
    return [n for n in names if n in res.timings]


def _title(key: str, titles: dict[str, str]) -> str:
    if key in titles:
        return titles[key]
    prefix, events = key.split("@")
    name = "InvokeModel stream" if prefix.endswith("invoke_stream") else "ConverseStream"
    if prefix.startswith(AIO):
        name = "aiobotocore " + name
    return f"{name}, {int(events):,} events"


def _probe_key(res: Any, key: str) -> str:
    """Streams are probed at their short length only; every length shares that probe."""
    if "@" in key and not key.startswith("lb_"):
        prefix = key.split("@")[0]
        for probed in res.probe.get(BASE, {}) or next(iter(res.probe.values()), {}):
            if probed.startswith(prefix + "@"):
                return str(probed)
    return key


def _records(res: Any, config: str, key: str) -> bool:
    """Whether the probe saw this configuration record token counts (or a span, for
    CountTokens and non-Bedrock calls) for this workload."""
    found = res.probe.get(config, {}).get(_probe_key(res, key))
    if not found or found.get("error"):
        return False
    if key in ("count_tokens", "non_bedrock"):
        return bool(found.get("spans"))
    return bool(found.get("input_tokens"))


def render(res: Any) -> str:
    s = Stats(res)
    meta = res.meta
    plan = meta.get("plan", {})
    titles: dict[str, str] = meta.get("titles", {})
    short: dict[str, int] = meta.get("short_events", {})
    medium = int(plan.get("medium_events", 1000))
    st = Streams(s, short, medium)
    all_configs = list(meta.get("configs", {}))
    main = _configs(res, [c for c in all_configs if "precount" not in c])
    peers = [p for p in meta.get("peers", []) if p in main]
    out: list[str] = []
    add = out.append

    add("# Benchmarks\n")
    add(f"Written by `python benchmarks/run.py{' --quick' if plan.get('mode') == 'quick' else ''}`"
        f" on {meta.get('started', '?')} ({meta.get('seconds', '?')} s). Do not edit by hand: "
        "[docs/benchmarks.md](docs/benchmarks.md) says how to run it and read it.\n")
    out.append(_machine_section(res))
    out.append(_targets_section(res, s, st, main, peers))
    out.append(_calls_section(res, s, main, peers, titles))
    out.append(_streams_section(res, s, st, main))
    out.append(_memory_section(res, main))
    out.append(_loopback_section(res, s, main, titles))
    out.append(_precount_section(res, s))
    out.append(_probe_section(res, main, titles, short))
    out.append(_missing_section(res))
    return "\n".join(out).rstrip() + "\n"


def _machine_section(res: Any) -> str:
    meta = res.meta
    m = meta.get("machine", {})
    v = meta.get("versions", {})
    plan = meta.get("plan", {})
    rows = [
        ("machine", f"{m.get('cpu')}, {m.get('cpus')} CPUs, {m.get('platform')}"),
        ("Python", m.get("python", "?")),
        ("load average (1/5/15 min)", f"{meta.get('load_start')} at start, "
                                      f"{meta.get('load_end')} at end (other work was running)"),
        ("ours", f"{v.get('opentelemetry-instrumentation-bedrock-tokens')} at {m.get('commit')}"
                 + (" (src/ modified)" if m.get("src_dirty") else "")),
    ]
    ours_dist = "opentelemetry-instrumentation-bedrock-tokens"
    rows += [(k, val) for k, val in v.items() if k != ours_dist]
    rows.append(("plan", f"{plan.get('mode')}: {plan.get('rounds')} interleaved rounds x "
                         f"{plan.get('values')} values of ~{plan.get('target', 0) * 1e3:.0f} ms "
                         f"per configuration and workload; long streams "
                         f"{plan.get('long_events')} in {plan.get('long_rounds')} round(s)"
                         + (f", {plan['longest_events']:,} once" if plan.get("longest_events")
                            else "")))
    rows.append(("clock", "in-process: CPU time of the worker process (other processes on the "
                          "machine inflate wall time far more); loopback: wall time"))
    rows.append(("estimates", "per call: median (min..max) of all values; added cost: "
                 "difference of 10th percentiles, since load from other processes only adds "
                 "time; [per-round spread]"))
    rows.append(("set-up in every configuration", "SDK TracerProvider + SimpleSpanProcessor + "
                 "InMemorySpanExporter, MeterProvider + InMemoryMetricReader; content capture off"))
    return "## Machine, versions, method\n\n" + table(("", ""), rows) + "\n"


def _cheapest_peer(res: Any, s: Stats, key: str, peers: Sequence[str]
                   ) -> tuple[Optional[str], Optional[float]]:
    best: tuple[Optional[str], Optional[float]] = (None, None)
    for peer in peers:
        if not _records(res, peer, key):
            continue
        found = s.added(peer, key)
        if found and (best[1] is None or found[0] < best[1]):
            best = (peer, found[0])
    return best


def _cheapest_peer_fixed(res: Any, st: Streams, prefix: str, op: str, peers: Sequence[str]
                         ) -> tuple[Optional[str], Optional[float]]:
    best: tuple[Optional[str], Optional[float]] = (None, None)
    for peer in peers:
        if not _records(res, peer, f"{prefix}@{st.short.get(op)}"):
            continue
        found = st.fixed(peer, prefix, op)
        if found is not None and (best[1] is None or found < best[1]):
            best = (peer, found)
    return best


def _verdict(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def _points_recorded(res: Any, config: str, key: str) -> bool:
    """Whether the probe saw this configuration record any metric point for this workload
    (what a sampled-out configuration still records)."""
    found = res.probe.get(config, {}).get(_probe_key(res, key))
    return bool(found and not found.get("error") and sum(found.get("points", {}).values()))


def _checked(res: Any, key: str, ok: bool, *configs: str) -> str:
    """A verdict, unless one of ``configs`` recorded nothing for the workload."""
    silent = [c for c in configs if not _points_recorded(res, c, key)]
    return f"n/a ({', '.join(silent)} recorded nothing)" if silent else _verdict(ok)


def _targets_section(res: Any, s: Stats, st: Streams, main: Sequence[str],
                     peers: Sequence[str]) -> str:
    rows: list[tuple[str, str, str]] = []

    def a(config: str, key: str) -> Optional[float]:
        found = s.added(config, key)
        return found[0] if found else None

    if OURS in main:
        for key in ("invoke_headers", "invoke_body", "invoke_large", "converse",
                    AIO + "invoke_headers", AIO + "invoke_body", AIO + "converse"):
            ours, floor = a(OURS, key), a(FLOOR, key)
            if ours is not None and floor is not None:
                rows.append((f"{key}: ours ≤ 1.2 x floor (added µs)",
                             f"{us(ours)} vs {us(floor)} → {times(ours, floor)}",
                             _checked(res, key, ours <= 1.2 * floor, OURS, FLOOR)))
            peer, cheapest = _cheapest_peer(res, s, key, peers)
            if ours is not None and cheapest is not None:
                rows.append((f"{key}: ours ≤ 0.8 x cheapest peer",
                             f"{us(ours)} vs {us(cheapest)} ({peer}) → "
                             f"{times(ours, cheapest)}",
                             _checked(res, key, ours <= 0.8 * cheapest, OURS)))
            off, floor_off = a(OURS_OFF, key), a(FLOOR_OFF, key)
            if off is not None and floor_off is not None:
                rows.append((f"{key}, sampled out: ours ≤ 1.2 x floor (added µs)",
                             f"{us(off)} vs {us(floor_off)} → {times(off, floor_off)}",
                             _checked(res, key, off <= 1.2 * floor_off, OURS_OFF, FLOOR_OFF)))
        for prefix, op in STREAM_OPS + AIO_STREAM_OPS:
            label = _label(prefix, op)
            ours, floor = st.fixed(OURS, prefix, op), st.fixed(FLOOR, prefix, op)
            short_key = st.key(prefix, st.short[op])
            if ours is not None and floor is not None:
                rows.append((f"{label}: fixed cost ours ≤ 1.2 x floor",
                             f"{us(ours)} vs {us(floor)} → {times(ours, floor)}",
                             _checked(res, short_key, ours <= 1.2 * floor, OURS, FLOOR)))
            off, floor_off = st.fixed(OURS_OFF, prefix, op), st.fixed(FLOOR_OFF, prefix, op)
            if off is not None and floor_off is not None:
                rows.append((f"{label}, sampled out: fixed cost ours ≤ 1.2 x floor",
                             f"{us(off)} vs {us(floor_off)} → {times(off, floor_off)}",
                             _checked(res, short_key, off <= 1.2 * floor_off,
                                      OURS_OFF, FLOOR_OFF)))
            peer, cheapest = _cheapest_peer_fixed(res, st, prefix, op, peers)
            if ours is not None and cheapest is not None:
                rows.append((f"{label}: fixed cost ours ≤ 0.8 x cheapest peer's",
                             f"{us(ours)} vs {us(cheapest)} ({peer}) → "
                             f"{times(ours, cheapest)}",
                             _checked(res, short_key, ours <= 0.8 * cheapest, OURS)))
            medium = st.per_event(OURS, prefix, op, st.medium)
            if medium is not None:
                rows.append((f"{label}: ≤ 1 µs added per event ({st.medium:,} events, "
                             f"{len(s.values(OURS, st.key(prefix, st.medium)))} values)",
                             f"{_per_event_cell(medium)} µs (floor "
                             f"{_per_event_cell(st.per_event(FLOOR, prefix, op, st.medium))})",
                             _verdict(medium <= 1e-6)))
            bare = st.per_event(NO_CHUNK, prefix, op, st.medium)
            if bare is not None:
                rows.append((f"{label}: ≤ 1 µs added per event, time_per_output_chunk off "
                             f"({NO_CHUNK})", f"{_per_event_cell(bare)} µs",
                             _verdict(bare <= 1e-6)))
                if medium is not None:
                    rows.append((f"{label}: what time_per_output_chunk adds per event "
                                 "(ours minus ours with it off; information)",
                                 f"{_per_event_cell(medium - bare)} µs", "n/a"))
            longer = [n for n in st.lengths(prefix) if n > st.medium]
            cells, ok = [], True
            for events in longer:
                pe = st.per_event(OURS, prefix, op, events)
                noise = abs(st.per_event(FLOOR, prefix, op, events) or 0.0)
                if pe is None:
                    continue
                cells.append(f"{_per_event_cell(pe)} @ {events:,} (floor ±{noise * 1e6:.2f})")
                ok = ok and pe <= 1e-6 + noise
            if cells:
                rows.append((f"{label}: ≤ 1 µs added per event at longer lengths (marginal cost; "
                             "allowing the floor's deviation from zero as noise)",
                             "; ".join(cells), _verdict(ok)))
            mem = res.memory.get(OURS, {}).get(f"{prefix}@{res.meta.get('memory_events')}")
            base = res.memory.get(BASE, {}).get(f"{prefix}@{res.meta.get('memory_events')}")
            if mem and base:
                delta = mem["tracemalloc_peak"] - base["tracemalloc_peak"]
                rows.append((f"{label}: tracemalloc peak within 256 KiB of uninstrumented "
                             f"({res.meta.get('memory_events'):,} events)",
                             f"{delta / 1024:+.1f} KiB", _verdict(delta <= 256 * 1024)))
    if WITH_CONTRIB in main and OURS in main and CONTRIB in main:
        contrib_plain = a(CONTRIB, "non_bedrock")
        keys = list(BEDROCK_CALLS) + [f"{p}@{short}" for p, short in
                                      zip(("invoke_stream", "converse_stream"),
                                          res.meta.get("short_events", {}).values())]
        for key in keys:
            both, ours = a(WITH_CONTRIB, key), a(OURS, key)
            if both is None or ours is None or contrib_plain is None:
                continue
            rows.append((f"{key}: ours+contrib ≤ ours + contrib's non-Bedrock cost",
                         f"{us(both)} vs {us(ours)} + {us(contrib_plain)} = "
                         f"{us(ours + contrib_plain)}",
                         _verdict(both <= ours + contrib_plain)))
    pre = _precount_numbers(s)
    if pre:
        rt, blocking, background = pre
        if background is not None:
            rows.append(("background pre-count ≤ 1 ms added to the median call",
                         f"{ms(background, True)} ms", _verdict(background <= 1e-3)))
        if blocking is not None and rt is not None:
            rows.append(("blocking pre-count ≈ one CountTokens round trip (≤ 1.1x)",
                         f"{ms(blocking, True)} ms vs {ms(rt)} ms",
                         _verdict(blocking <= 1.1 * rt)))
    text = ("## Targets\n\nAdded costs are differences of 10th percentiles (see the method "
            "above); the spread of every figure is in the tables below, and run-to-run spread "
            "on this machine is about ±20%.\n\n")
    return text + table(("target", "measured", "verdict"), rows) + "\n"


def _calls_section(res: Any, s: Stats, main: Sequence[str], peers: Sequence[str],
                   titles: dict[str, str]) -> str:
    short = res.meta.get("short_events", {})
    keys = [k for k in titles if not k.startswith("lb_")]
    medium = res.meta.get('plan', {}).get('medium_events', 1000)
    keys += [f"{p}@{n}" for (p, _), n in zip(STREAM_OPS, short.values())]
    keys += [f"{p}@{medium}" for p, _ in STREAM_OPS]
    keys += [f"{p}@{n}" for (p, _), n in zip(AIO_STREAM_OPS, short.values())]
    keys += [f"{p}@{medium}" for p, _ in AIO_STREAM_OPS]
    keys = [k for k in keys if any(s.values(c, k) for c in main)]

    def title(key: str) -> str:
        return _title(key, titles)

    parts = ["## In-process calls (canned responses, no socket)\n",
             "Per call, µs: median (min..max) of all values.\n",
             table(["workload", *main], ([title(k), *(_cell(s, c, k) for c in main)]
                                         for k in keys)),
             "\nAdded over uninstrumented, µs: difference of the 10th percentiles (% of the "
             "uninstrumented call) [smallest, largest per-round difference].\n",
             table(["workload", *main[1:]],
                   ([title(k), *(_added_cell(s, c, k) for c in main[1:])] for k in keys))]
    ratio_cols = [FLOOR, *peers]
    rows = []
    for key in keys:
        ours = s.added(OURS, key)
        row = [title(key)]
        for other in ratio_cols:
            theirs = s.added(other, key)
            cell = ratio(ours[0] if ours else None, theirs[0] if theirs else None)
            if other in peers and not _records(res, other, key):
                cell += " (records nothing)" if cell != "n/a" else ""
            row.append(cell)
        if OURS_OFF in main and FLOOR_OFF in main:
            off, floor_off = s.added(OURS_OFF, key), s.added(FLOOR_OFF, key)
            row.append(ratio(off[0] if off else None, floor_off[0] if floor_off else None))
        rows.append(row)
    parts.append("\nRatios of added cost, ours / other (below 1: ours is cheaper). A peer that "
                 "records no tokens for a workload is cheap for the wrong reason; see the "
                 "probe table.\n")
    header = ["workload", *(f"ours / {c}" for c in ratio_cols)]
    if OURS_OFF in main and FLOOR_OFF in main:
        header.append("sampled out: ours / floor")
    parts.append(table(header, rows))
    return "\n".join(parts) + "\n"


def _streams_section(res: Any, s: Stats, st: Streams, main: Sequence[str]) -> str:
    parts = ["## Streams: fixed cost per call and cost per event\n",
             "Fixed = added cost of the short stream minus its events x the per-event slope "
             "(short → medium). Per event at the medium length = (added at medium - added at "
             "the short stream) / (medium - short length), from all timed values. Streams of "
             "10,000 events and more run once per configuration, timed per 1,000 events: per "
             "event at N is the marginal cost there, the 10th percentile over the last tenth of "
             "the stream minus uninstrumented's, so a cost that grows with the stream's length "
             "shows as a figure that rises with N. µs per event; the uninstrumented row is "
             "botocore's own cost per event.\n"]
    for prefix, op in STREAM_OPS + AIO_STREAM_OPS:
        lengths = [n for n in st.lengths(prefix) if n != st.short.get(op)]
        if not lengths:
            continue
        header = ["configuration", "fixed, µs", *(f"per event @ {n:,}" for n in lengths)]
        rows = []
        base = st.base_per_event(prefix, op)
        rows.append([BASE, "n/a", *(
            us(base) if n == st.medium else us(st.tail(BASE, prefix, n)) for n in lengths)])
        for config in main[1:]:
            if not s.values(config, st.key(prefix, st.short[op])):
                continue
            rows.append([config, us(st.fixed(config, prefix, op), True),
                         *(_per_event_cell(st.per_event(config, prefix, op, n))
                           for n in lengths)])
        parts.append(f"\n### {_label(prefix, op)} (short stream: {st.short.get(op)} events)\n")
        parts.append(table(header, rows))
    return "\n".join(parts) + "\n"


def _per_event_cell(seconds: Optional[float]) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e6:+.2f}"


def _memory_section(res: Any, main: Sequence[str]) -> str:
    events = res.meta.get("memory_events")
    if not res.memory or not events:
        return ""
    header = ["configuration"]
    for _, op in STREAM_OPS:
        header += [f"{op}: tracemalloc peak, KiB (Δ)", "RSS growth, KiB", "peak RSS growth, KiB"]
    rows = []
    for config in main:
        row = [config]
        for prefix, _ in STREAM_OPS:
            key = f"{prefix}@{events}"
            mem = res.memory.get(config, {}).get(key)
            base = res.memory.get(BASE, {}).get(key)
            if not mem:
                row += ["n/a", "n/a", "n/a"]
                continue
            delta = (f" ({(mem['tracemalloc_peak'] - base['tracemalloc_peak']) / 1024:+.1f})"
                     if base and config != BASE else "")
            row += [f"{mem['tracemalloc_peak'] / 1024:.1f}{delta}",
                    f"{mem['rss_growth'] / 1024:.0f}", f"{mem['peak_rss_growth'] / 1024:.0f}"]
        rows.append(row)
    return (f"## Memory over one {events:,}-event stream\n\n"
            "Each configuration in its own process, after warm-up streams: RSS growth (current "
            "and peak, from /proc and getrusage) over one stream without tracemalloc, then the "
            "tracemalloc peak over a second one (Δ: minus uninstrumented's).\n\n"
            + table(header, rows) + "\n")


def _loopback_section(res: Any, s: Stats, main: Sequence[str], titles: dict[str, str]) -> str:
    keys = [k for k in titles if k.startswith("lb_") and "precount" not in k]
    keys = [k for k in keys if any(s.values(c, k + ".wall") for c in main)]
    if not keys:
        return ""
    walls = [k + ".wall" for k in keys]
    parts = ["## Over loopback, against the emulator\n",
             "The emulator runs in its own process; wall time per call, µs: median "
             "(min..max).\n",
             table(["workload", *main], ([titles[k], *(_cell(s, c, w) for c in main)]
                                         for k, w in zip(keys, walls))),
             "\nAdded over uninstrumented, µs (%) [per-round spread].\n",
             table(["workload", *main[1:]],
                   ([titles[k], *(_added_cell(s, c, w) for c in main[1:])]
                    for k, w in zip(keys, walls)))]
    return "\n".join(parts) + "\n"


def _precount_numbers(s: Stats) -> Optional[tuple[Optional[float], Optional[float],
                                                  Optional[float]]]:
    key = "lb_precount_invoke.wall"
    off = s.median(OURS, key)
    if off is None:
        return None
    rt = s.median(BASE, "lb_precount_count_tokens.wall")
    blocking = s.median("ours+precount-blocking", key)
    background = s.median("ours+precount-background", key)
    if blocking is None and background is None:
        return None
    return (rt, None if blocking is None else blocking - off,
            None if background is None else background - off)


def _precount_section(res: Any, s: Stats) -> str:
    key = "lb_precount_invoke.wall"
    names = [BASE, OURS, "ours+precount-blocking", "ours+precount-background"]
    names = [n for n in names if s.values(n, key)]
    if len(names) < 3:
        return ""
    off = s.median(OURS, key)
    rt = s.median(BASE, "lb_precount_count_tokens.wall")
    rows = []
    for name in names:
        med = s.median(name, key)
        vs = s.values(name, key)
        added = None if med is None or off is None or name in (BASE, OURS) else med - off
        rows.append([name, f"{ms(med)} ({ms(min(vs))}..{ms(max(vs))})",
                     "n/a" if added is None else ms(added, True)])
    return ("## Pre-count\n\n"
            f"InvokeModel over loopback with the invocation's first byte delayed "
            f"{res.meta.get('invoke_delay', 0) * 1e3:.0f} ms and every CountTokens "
            f"{res.meta.get('precount_delay', 0) * 1e3:.0f} ms; one CountTokens round trip "
            f"(uninstrumented, same delay) takes {ms(rt)} ms. Wall time per call, ms.\n\n"
            + table(["configuration", "per call, ms", "added over ours (pre-count off), ms"],
                    rows) + "\n")


def _probe_section(res: Any, main: Sequence[str], titles: dict[str, str],
                   short: dict[str, int]) -> str:
    keys = [k for k in titles if not k.startswith("lb_")]
    keys += [f"{p}@{n}" for (p, _), n in zip(STREAM_OPS + AIO_STREAM_OPS,
                                             [*short.values(), *short.values()])]
    keys = [k for k in keys if any(k in res.probe.get(c, {}) for c in main)]
    rows = []
    for key in keys:
        row = [_title(key, titles)]
        for config in main:
            found = res.probe.get(config, {}).get(key)
            if not found:
                row.append("n/a")
                continue
            if found.get("error"):
                row.append("error: " + found["error"][:60])
                continue
            tokens = ""
            if found.get("input_tokens") or found.get("output_tokens"):
                tokens = (f", tokens {'/'.join(map(str, found.get('input_tokens', [])))}"
                          f" in, {'/'.join(map(str, found.get('output_tokens', [])))} out")
            points = sum(found.get("points", {}).values())
            row.append(f"{found['spans']} span(s){tokens}, {points} point(s)")
        rows.append(row)
    return ("## What each configuration recorded (one call, probe)\n\n"
            "Spans ended, token counts on them, and metric data points recorded by one call.\n\n"
            + table(["workload", *main], rows) + "\n")


def _missing_section(res: Any) -> str:
    lines = [
        "Loopback streams are measured at two lengths only; the per-event cost up to 300,000 "
        "events is measured in-process, where nothing but the client runs.",
        "contrib and genai-bedrock active together is not one of the configurations.",
    ]
    for name, why in res.unavailable.items():
        lines.append(f"- `{name}` not measured: {why}")
    lines += [f"- {note}" for note in res.notes]
    if res.meta.get("setup_problem"):
        lines.append(f"- Peers' venv: {res.meta['setup_problem']}")
    lines += [f"- worker failure: {f}" for f in res.failures[:20]]
    return "## Scope, not measured, failures\n\n" + "\n".join(
        line if line.startswith("- ") else f"- {line}" for line in lines) + "\n"
