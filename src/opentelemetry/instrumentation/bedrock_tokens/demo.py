"""``bedrock-tokens demo``: run a real boto3 app under the real launcher and show what it recorded.

What it does, and why each piece is the real one:

1. Starts the embedded Bedrock emulator (``--endpoint-url``/``--region`` point at real Bedrock
   instead), so the demo needs no AWS account and its counts are exact and repeatable.
2. Runs ``demo_app.py``, a plain boto3 program that imports neither OpenTelemetry nor this
   package, as ``opentelemetry-instrument python demo_app.py`` from this environment, with
   pre-counting on. Zero-code loading through the entry point is exactly what users get.
3. The child reports back with the SDK's own console exporters (``OTEL_TRACES_EXPORTER`` and
   ``OTEL_METRICS_EXPORTER=console``) on its stdout, and progress lines on its stderr. Console
   exporters ship with ``opentelemetry-sdk``, so the demo needs no exporter package beyond the
   ``demo`` extra, and the documents parsed here are what the SDK hands to any exporter.
4. Prints a per-call table and the metric totals, then checks them: the metric sums against
   the spans, and, with the emulator, every count against what the emulator itself recorded
   for that request (joined on the AWS request id). A mismatch makes the command fail.

``run_demo()`` does the work and returns a ``DemoResult`` the tests read; ``run()`` is the
command-line entry.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any, Callable, Optional, Sequence
from urllib.parse import urlsplit

from . import names
from .agents import AGENT_OPERATIONS as _AGENT_OPERATIONS
from .demo_app import PROGRESS
from .demo_app import steps as app_steps
from .doctor import launcher_command
from .pricing import example_table_path
from .telemetry import SCOPE

SERVICE_NAME = "bedrock-tokens-demo"
PRECOUNT_MODES = ("blocking", "background")

# Families CountTokens does not serve: the emulator is told to refuse them as the service
# does, so the demo shows the same "n/a" pre-counts it would show against real Bedrock.
_NOT_COUNTABLE = ("amazon.nova", "meta.llama")
# The agent the app calls when run against the emulator (which plays any agent id).
EMULATOR_AGENT = ("DEMOAGENT1", "TSTALIASID")

# botocore error codes that mean "these credentials are not good here".
_BAD_CREDENTIALS = frozenset({
    "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
    "InvalidClientTokenId", "NoCredentialsError", "PartialCredentialsError",
})


@dataclasses.dataclass
class Step:
    """One call as the app reported it (operation, model, outcome)."""

    number: int
    label: str
    operation: str
    model: str
    expected_error: Optional[str] = None  # set for the call that fails on purpose
    ok: Optional[bool] = None  # None: never finished
    code: Optional[str] = None
    message: Optional[str] = None
    seconds: Optional[float] = None


@dataclasses.dataclass
class Row:
    """One invocation as the instrumentation recorded it, read back from its span."""

    step: Optional[Step]
    span: dict[str, Any]
    precount: Optional[dict[str, Any]]  # the linked count span, when there is one

    def attr(self, name: str) -> Any:
        return self.span.get("attributes", {}).get(name)

    @property
    def model(self) -> str:
        return str(self.attr(names.GEN_AI_REQUEST_MODEL) or self.attr(names.GEN_AI_AGENT_ID) or "")

    @property
    def status(self) -> str:
        if self.span.get("status", {}).get("status_code") == "ERROR":
            return f"error {self.attr(names.ERROR_TYPE) or ''}".rstrip()
        return "ok"

    @property
    def precount_error(self) -> Optional[str]:
        """The linked count span's error.type: why there is no estimate."""
        if self.precount is None:
            return None
        error = self.precount.get("attributes", {}).get(names.ERROR_TYPE)
        return None if error is None else str(error)


@dataclasses.dataclass
class MetricTotal:
    """One metric of our scope, summed per group (token type, or error type for durations)."""

    name: str
    unit: str
    temporality: str
    groups: dict[str, tuple[int, float]]  # group -> (number of recordings, sum)


@dataclasses.dataclass
class DemoResult:
    emulated: bool
    steps: list[Step]
    spans: list[dict[str, Any]]
    metric_documents: list[dict[str, Any]]
    rows: list[Row]
    totals: list[MetricTotal]
    checks: list[str]  # what was verified, in words
    problems: list[str]  # what did not hold; non-empty means the demo failed
    hints: list[str]  # what to do about failures against real Bedrock
    returncode: Optional[int]
    log: list[str]  # the app's stderr other than progress lines
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems


# -- the child process ---------------------------------------------------------------------------
def child_environment(
    base: dict[str, str], endpoint_url: Optional[str], region: str, precount: str,
    dummy_credentials: bool,
) -> dict[str, str]:
    """The app's environment: the caller's, minus any OTEL_* (the demo must not depend on, or
    send data to, whatever the shell has configured), plus console exporters and pre-count."""
    env = {key: value for key, value in base.items() if not key.startswith("OTEL_")}
    env.update({
        "OTEL_SERVICE_NAME": SERVICE_NAME,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "console",
        "OTEL_LOGS_EXPORTER": "none",
        # One metrics export, at shutdown, holding the run's totals.
        "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
        "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT": precount,
        # The shipped example price table (dated, sourced figures): the cost column.
        "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRICES": example_table_path(),
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("BEDROCK_ENDPOINT_URL", None)
    if endpoint_url:
        env["BEDROCK_ENDPOINT_URL"] = endpoint_url
    if dummy_credentials:
        # Only for the emulator: never let a real profile, SSO cache or bearer token be used.
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK",
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
            env.pop(key, None)
        env.update({"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo",
                    "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def _run_child(
    env: dict[str, str], workdir: str, timeout: float, on_event: Callable[[dict[str, Any]], None]
) -> tuple[Optional[int], str, list[str]]:
    """Run the app under the launcher: (exit status or None on timeout, stdout, other stderr)."""
    app = Path(workdir) / "bedrock_demo_app.py"
    # A copy, run as a script from its own directory: nothing of this package is importable
    # from the script's location, so only the launcher can bring the instrumentation in.
    shutil.copyfile(Path(__file__).with_name("demo_app.py"), app)
    argv = [*launcher_command(), str(app)]
    process = subprocess.Popen(
        argv, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
    )
    stdout, stderr = process.stdout, process.stderr
    assert stdout is not None and stderr is not None
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(stdout.read()), daemon=True)
    reader.start()
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, stop)
    timer.start()
    log: list[str] = []
    try:
        for line in stderr:
            if line.startswith(PROGRESS):
                try:
                    on_event(json.loads(line[len(PROGRESS):]))
                    continue
                except ValueError:
                    pass
            if line.strip():
                log.append(line.rstrip("\n"))
        process.wait()
    finally:
        timer.cancel()
        reader.join(5)
    return (None if timed_out.is_set() else process.returncode), "".join(chunks), log


def parse_documents(text: str) -> list[dict[str, Any]]:
    """The JSON documents the console exporters wrote, one after another, skipping any line
    that is not JSON (an app may print too)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index, end = 0, len(text)
    while index < end:
        start = text.find("{", index)
        if start < 0:
            break
        try:
            value, index = decoder.raw_decode(text, start)
        except ValueError:
            newline = text.find("\n", start)
            index = end if newline < 0 else newline + 1
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


# -- reading the telemetry back ------------------------------------------------------------------
def _ours(span: dict[str, Any]) -> bool:
    return bool(span.get("attributes", {}).get(names.GEN_AI_PROVIDER_NAME) == (
        names.PROVIDER_AWS_BEDROCK))


def _is_count(span: dict[str, Any]) -> bool:
    operation = span.get("attributes", {}).get(names.GEN_AI_OPERATION_NAME)
    return bool(operation == names.OP_COUNT_TOKENS)


def _linked(span: dict[str, Any], relation: str) -> list[str]:
    return [link.get("context", {}).get("span_id", "") for link in span.get("links") or ()
            if (link.get("attributes") or {}).get(names.AWS_BEDROCK_LINK_RELATION) == relation]


def build_rows(steps: Sequence[Step], spans: Sequence[dict[str, Any]]) -> list[Row]:
    """One row per invocation span, in start order, paired with the app's step in the same
    position (the app calls one after another) and with its pre-count span (by link). An
    agent's model steps are its child spans, not calls of the app: they are not rows."""
    every = [s for s in spans if _ours(s)]
    ids = {s.get("context", {}).get("span_id") for s in every}
    ours = sorted((s for s in every if s.get("parent_id") not in ids),
                  key=lambda s: str(s.get("start_time")))
    by_id = {s.get("context", {}).get("span_id"): s for s in ours}
    counts_for: dict[str, dict[str, Any]] = {}
    for span in ours:
        if _is_count(span):
            for target in _linked(span, names.LINK_RELATION_PRECOUNTED):
                counts_for[target] = span
    rows = []
    invocations = [s for s in ours if not _is_count(s)]
    for index, span in enumerate(invocations):
        span_id = span.get("context", {}).get("span_id", "")
        precount = counts_for.get(span_id)
        for target in _linked(span, names.LINK_RELATION_PRECOUNT):
            precount = by_id.get(target, precount)
        step = steps[index] if index < len(steps) else None
        rows.append(Row(step, span, precount))
    return rows


def metric_totals(documents: Sequence[dict[str, Any]]) -> list[MetricTotal]:
    """Our scope's metrics from the last export (cumulative: it holds the run's totals)."""
    last = [doc for doc in documents if "resource_metrics" in doc][-1:]
    totals = []
    for doc in last:
        for resource in doc["resource_metrics"]:
            for scope in resource.get("scope_metrics", []):
                if scope.get("scope", {}).get("name") != SCOPE:
                    continue
                for metric in scope.get("metrics", []):
                    totals.append(_total(metric))
    order = [names.METRIC_TOKEN_USAGE, names.METRIC_OPERATION_DURATION,
             names.METRIC_TIME_TO_FIRST_CHUNK, names.METRIC_COUNT_TOKENS_DRIFT]
    return sorted(totals, key=lambda t: order.index(t.name) if t.name in order else len(order))


def _total(metric: dict[str, Any]) -> MetricTotal:
    data = metric.get("data", {})
    temporality = {1: "delta", 2: "cumulative"}.get(data.get("aggregation_temporality"), "")
    groups: dict[str, tuple[int, float]] = {}
    for point in data.get("data_points", []):
        attrs = point.get("attributes") or {}
        if names.GEN_AI_TOKEN_TYPE in attrs:
            group = str(attrs[names.GEN_AI_TOKEN_TYPE])
        elif names.ERROR_TYPE in attrs:
            group = f"error {attrs[names.ERROR_TYPE]}"
        else:
            group = "ok" if metric.get("name") == names.METRIC_OPERATION_DURATION else "all"
        if "count" in point:  # histogram
            count, value = int(point["count"]), float(point.get("sum") or 0)
        else:  # counter
            count, value = 1, float(point.get("value") or 0)
        previous = groups.get(group, (0, 0.0))
        groups[group] = (previous[0] + count, previous[1] + value)
    return MetricTotal(metric.get("name", ""), metric.get("unit", ""), temporality, groups)


# -- checks --------------------------------------------------------------------------------------
def _int(value: Any) -> Optional[int]:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


Checked = tuple[list[str], list[str]]  # (what held, what did not)


def quota_and_cost(rows: Sequence[Row]) -> str:
    """The run's quota burn and cost totals, from the spans."""
    burn = sum(_int(row.attr(names.AWS_BEDROCK_USAGE_QUOTA_TOKENS)) or 0 for row in rows)
    costs = [row.attr(names.AWS_BEDROCK_USAGE_COST) for row in rows]
    priced = [c for c in costs if isinstance(c, (int, float))]
    return (f"  Quota burn: {burn:,} tokens of tokens-per-minute quota "
            f"({names.AWS_BEDROCK_USAGE_QUOTA_TOKENS}: output counted at the model's burndown "
            f"rate).\n  Cost: ${sum(priced):.6f} for {len(priced)} of {len(rows)} calls, by the "
            "example price table (the others have no price there; see docs/cost.md).")


def _check_counter(
    rows: Sequence[Row], totals: Sequence[MetricTotal], metric: str, attribute: str
) -> Checked:
    total = next((t for t in totals if t.name == metric), None)
    from_spans = sum(v for row in rows
                     if isinstance(v := row.attr(attribute), (int, float)))
    recorded = sum(value for _, value in total.groups.values()) if total is not None else 0.0
    if abs(recorded - from_spans) <= 1e-9 * max(1.0, abs(from_spans)):
        return [f"{metric} sum {recorded:,.6g} = the spans' {attribute} total"], []
    return [], [f"{metric} sum is {recorded:,.6g} but the spans' {attribute} add up to "
                f"{from_spans:,.6g}"]


def check_metrics(rows: Sequence[Row], totals: Sequence[MetricTotal]) -> Checked:
    """The token-usage metric must add up to exactly what the spans say, and so must the
    cost and quota-burn counters."""
    checks: list[str] = []
    problems: list[str] = []
    for metric, attribute in ((names.METRIC_USAGE_COST, names.AWS_BEDROCK_USAGE_COST),
                              (names.METRIC_QUOTA_TOKENS, names.AWS_BEDROCK_USAGE_QUOTA_TOKENS)):
        held, failed = _check_counter(rows, totals, metric, attribute)
        checks += held
        problems += failed
    usage = next((t for t in totals if t.name == names.METRIC_TOKEN_USAGE), None)
    if usage is None:
        return checks, [f"no {names.METRIC_TOKEN_USAGE} metric was exported"]
    for kind, attribute in ((names.TOKEN_TYPE_INPUT, names.GEN_AI_USAGE_INPUT_TOKENS),
                            (names.TOKEN_TYPE_OUTPUT, names.GEN_AI_USAGE_OUTPUT_TOKENS)):
        from_spans = sum(_int(row.attr(attribute)) or 0 for row in rows)
        recorded = usage.groups.get(kind, (0, 0.0))[1]
        if recorded == from_spans:
            checks.append(f"{names.METRIC_TOKEN_USAGE} {kind} sum {recorded:,.0f} = the spans' "
                          f"{attribute} total")
        else:
            problems.append(f"{names.METRIC_TOKEN_USAGE} {kind} sum is {recorded:,.0f} but the "
                            f"spans' {attribute} add up to {from_spans:,}")
    return checks, problems


def check_against_emulator(rows: Sequence[Row], recorded: Sequence[Any]) -> Checked:
    """Every count on every span must be what the emulator reported for that very request."""
    problems: list[str] = []
    by_id = {r.request_id: r for r in recorded}
    # What CountTokens answered. Pre-count spans carry no request id and, in background mode,
    # may reach the wire after their invocation: each estimate must use up one answer.
    answers = Counter(r.input_tokens for r in recorded
                      if r.operation == "CountTokens" and r.status == 200)
    verified = estimates = 0
    for number, row in enumerate(rows, start=1):
        where = f"call {number} ({row.model})"
        if row.status != "ok":
            expected = row.step.code if row.step is not None else None
            if row.attr(names.ERROR_TYPE) != expected:
                problems.append(f"{where}: error.type {row.attr(names.ERROR_TYPE)!r}, the app "
                                f"saw {expected!r}")
            continue
        request_id = row.attr(names.AWS_REQUEST_ID)
        item = by_id.get(request_id)
        if item is None:
            problems.append(f"{where}: the emulator has no request {request_id!r}")
            continue
        cache_read, cache_write = item.cache_read_tokens, item.cache_write_tokens
        expected_attrs = {
            names.AWS_BEDROCK_USAGE_UNCACHED_INPUT_TOKENS: item.input_tokens,
            names.GEN_AI_USAGE_INPUT_TOKENS: (item.input_tokens or 0) + (cache_read or 0)
            + (cache_write or 0),
            names.GEN_AI_USAGE_OUTPUT_TOKENS: item.output_tokens,
            names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cache_read,
            names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: cache_write,
        }
        wrong = [f"{name}={row.attr(name)!r} (emulator: {value!r})"
                 for name, value in expected_attrs.items() if _int(row.attr(name)) != value]
        # (an agent names no model: its steps' model is the emulator's agent model)
        agent = item.operation in _AGENT_OPERATIONS
        if (not agent and item.model_id != row.model) or (
            row.step and item.operation != row.step.operation
        ):
            wrong.append(f"request {item.operation} {item.model_id}")
        if wrong:
            problems.append(f"{where}: " + ", ".join(wrong))
        else:
            verified += 1
        estimate = _int(row.attr(names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS))
        if estimate is not None:
            if answers[estimate] > 0:
                answers[estimate] -= 1
                estimates += 1
            else:
                problems.append(f"{where}: estimate {estimate} is no answer the emulator's "
                                "CountTokens gave")
    checks = [f"{verified} of {sum(1 for r in rows if r.status == 'ok')} successful calls: "
              "input, output and cache counts equal what the emulator reported for the same "
              "request id"]
    if estimates:
        checks.append(f"{estimates} pre-count estimates equal the emulator's CountTokens answers")
    return checks, problems


def real_bedrock_hints(steps: Sequence[Step], rows: Sequence[Row], region: str) -> list[str]:
    """Plain words for the failures credentials and permissions cause on real Bedrock."""
    hints = []
    codes = {step.code for step in steps if step.ok is False and step.code}
    denied = sorted({step.model for step in steps if step.code == "AccessDeniedException"})
    if codes & _BAD_CREDENTIALS:
        hints.append("AWS did not accept the credentials ("
                     + ", ".join(sorted(codes & _BAD_CREDENTIALS)) + "). Refresh them (for "
                     "example `aws sso login`) or check AWS_PROFILE, then run the demo again.")
    if denied:
        hints.append("Bedrock denied access to " + ", ".join(denied) + f" in {region}: the "
                     "credentials need bedrock:InvokeModel and "
                     "bedrock:InvokeModelWithResponseStream (Converse and ConverseStream use "
                     "the same actions) on these models, and model access must be enabled for "
                     "them in this region.")
    if {"EndpointConnectionError", "ConnectTimeoutError"} & codes:
        hints.append("The endpoint could not be reached: check --endpoint-url, --region and "
                     "the network path (proxy, VPC endpoint).")
    if any(row.precount_error == "AccessDeniedException" for row in rows):
        hints.append("CountTokens was denied, so no pre-count estimates: grant "
                     "bedrock:CountTokens to see them.")
    return hints


# -- output --------------------------------------------------------------------------------------
def _num(value: Any) -> str:
    number = _int(value)
    return "-" if number is None else f"{number:,}"


def _estimate(row: Row) -> str:
    estimate = _int(row.attr(names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS))
    if estimate is None:
        return "n/a" if row.precount_error else "-"
    drift = _int(row.attr(names.AWS_BEDROCK_COUNT_TOKENS_DRIFT))
    return f"{estimate:,}" + ("" if drift is None else f" ({drift:+d})")


def _cost(row: Row) -> str:
    cost = row.attr(names.AWS_BEDROCK_USAGE_COST)
    return f"{cost:.6f}" if isinstance(cost, (int, float)) else "-"


def render_table(rows: Sequence[Row]) -> str:
    header = ("#", "operation / model", "input", "output", "cache read/write",
              "1st chunk", "estimate (drift)", "cost USD", "status")
    body = []
    for number, row in enumerate(rows, start=1):
        ttfc = row.attr(names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
        cache = "-"
        read = row.attr(names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
        write = row.attr(names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)
        if read is not None or write is not None:
            cache = f"{_num(read)} / {_num(write)}"
        body.append((
            str(number), row.step.operation if row.step else "?",
            _num(row.attr(names.GEN_AI_USAGE_INPUT_TOKENS)),
            _num(row.attr(names.GEN_AI_USAGE_OUTPUT_TOKENS)), cache,
            "-" if not isinstance(ttfc, (int, float)) else f"{ttfc * 1000:.1f} ms",
            _estimate(row), _cost(row), row.status,
        ))
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    right = {2, 3, 4, 5, 6, 7}

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths])]
    for line, row in zip(body, rows):
        lines.append(fmt(line))
        lines.append(fmt(["", "  " + row.model]))
    return "\n".join("  " + line for line in lines)


def render_totals(totals: Sequence[MetricTotal]) -> str:
    lines = []
    for total in totals:
        lines.append(f"  {total.name} [{total.unit}] ({total.temporality})")
        for group, (count, value) in sorted(total.groups.items()):
            shown = (f"{value:.3f} s" if total.unit == "s" else f"${value:.6f}"
                     if total.unit == names.UNIT_USD else f"{value:,.0f}")
            lines.append(f"      {group:<28} {count:>3} recorded  sum {shown}")
    return "\n".join(lines) if lines else "  (no metrics were exported)"


class _Progress:
    """One line per call: the label when it starts, the outcome when it ends."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self.steps: dict[int, Step] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        kind, number = event.get("event"), int(event.get("step", 0))
        if kind == "start":
            step = Step(number, str(event.get("label", "")), str(event.get("operation", "")),
                        str(event.get("model", "")), event.get("expected_error"))
            self.steps[number] = step
            self._out.write(f"  [{number}/{event.get('total')}] {step.operation:<30} "
                            f"{step.label} ... ")
            self._out.flush()
        elif kind == "done" and number in self.steps:
            step = self.steps[number]
            step.ok = bool(event.get("ok"))
            step.code, step.message = event.get("code"), event.get("message")
            step.seconds = event.get("seconds")
            outcome = "ok" if step.ok else f"failed: {step.code}"
            self._out.write(f"{outcome} ({(step.seconds or 0) * 1000:.0f} ms)\n")
            self._out.flush()


# -- the whole run -------------------------------------------------------------------------------
def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def credentials_problem(endpoint_url: Optional[str]) -> Optional[str]:
    """Why the app cannot sign requests to real Bedrock, in words; None when it can."""
    import botocore.session

    try:
        credentials = botocore.session.get_session().get_credentials()
    except Exception as exc:  # a broken profile or SSO cache: say what botocore said
        return f"AWS credentials could not be loaded: {exc}"
    if credentials is None:
        where = endpoint_url or "Bedrock"
        return (f"No AWS credentials were found, so the demo cannot call {where}. Set them up "
                "(AWS_PROFILE with `aws sso login`, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or "
                "an instance role) and run again, or run `bedrock-tokens demo` without "
                "--endpoint-url/--region to use the built-in emulator.")
    return None


def run_demo(
    endpoint_url: Optional[str] = None,
    region: Optional[str] = None,
    precount: str = "blocking",
    out: Optional[IO[str]] = None,
    raw: bool = False,
    verbose: bool = False,
    timeout: float = 120.0,
    environ: Optional[dict[str, str]] = None,
) -> DemoResult:
    """Run the sample app (against the emulator unless ``endpoint_url``/``region`` is given),
    print what it recorded to ``out`` and return it."""
    out = out if out is not None else sys.stdout
    started = time.perf_counter()
    real = endpoint_url is not None or region is not None
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or (
        "us-east-1")
    emulator = None
    if not real:
        from .emulator import BedrockEmulator, Scenario

        emulator = BedrockEmulator().start()
        endpoint_url = emulator.endpoint_url
        refuse = Scenario(count_tokens="unsupported")
        for step in app_steps(region):
            model = step.params.get("modelId", "")
            if model and any(family in model for family in _NOT_COUNTABLE):
                emulator.set_scenario(refuse, model)
                emulator.set_scenario(refuse, model.split(".", 1)[1])  # its base model id
    dummy = emulator is not None or (endpoint_url is not None and _is_loopback(endpoint_url))
    where = (f"the built-in Bedrock emulator at {endpoint_url}" if emulator is not None else
             endpoint_url or f"Amazon Bedrock in {region}")
    out.write(f"Running a sample boto3 app under opentelemetry-instrument against {where}\n"
              f"(zero-code: the app imports no OpenTelemetry; pre-count: {precount}).\n\n")
    out.flush()
    progress = _Progress(out)
    env = child_environment(dict(os.environ if environ is None else environ), endpoint_url,
                            region, precount, dummy)
    if emulator is not None:  # the emulator plays any agent: the app makes its agent call
        env["BEDROCK_AGENT_ID"], env["BEDROCK_AGENT_ALIAS_ID"] = EMULATOR_AGENT
    try:
        with tempfile.TemporaryDirectory(prefix="bedrock-tokens-demo-") as workdir:
            returncode, stdout, log = _run_child(env, workdir, timeout, progress)
        recorded = emulator.requests if emulator is not None else []
    finally:
        if emulator is not None:
            emulator.stop()
    documents = parse_documents(stdout)
    spans = [doc for doc in documents if "context" in doc and "kind" in doc]
    metric_docs = [doc for doc in documents if "resource_metrics" in doc]
    steps = [progress.steps[n] for n in sorted(progress.steps)]
    rows = build_rows(steps, spans)
    totals = metric_totals(metric_docs)
    checks, problems = check_metrics(rows, totals)
    if returncode is None:
        problems.insert(0, f"the app did not finish within {timeout:g} s and was stopped")
    elif returncode != 0:
        problems.insert(0, f"the app exited with status {returncode}")
    if len(rows) != len(steps):
        problems.append(f"the app made {len(steps)} calls but {len(rows)} were recorded")
    hints: list[str] = []
    if emulator is not None:
        more_checks, more_problems = check_against_emulator(rows, recorded)
        checks += more_checks
        problems += more_problems
        problems += [f"call {s.number} ({s.label}): expected {s.expected_error or 'success'},"
                     f" got {s.code or 'success'}" + (f": {s.message}" if s.message else "")
                     for s in steps if s.code != s.expected_error]
    else:
        hints = real_bedrock_hints(steps, rows, region)
        if steps and all(step.ok is False for step in steps):
            problems.append("every call failed")
    result = DemoResult(emulator is not None, steps, spans,
                        metric_docs, rows, totals, checks, problems, hints, returncode, log,
                        time.perf_counter() - started)
    _print_result(result, out, raw, verbose)
    return result


def _print_result(result: DemoResult, out: IO[str], raw: bool, verbose: bool) -> None:
    write = out.write
    if raw:
        write("\nRaw spans, as the SDK's console exporter wrote them:\n")
        for span in result.spans:
            write(json.dumps(span, indent=2) + "\n")
        write("\nRaw metrics, as the SDK's console exporter wrote them:\n")
        for doc in result.metric_documents:
            write(json.dumps(doc, indent=2) + "\n")
    others = [s for s in result.spans if not _ours(s)]
    write(f"\nWhat the instrumentation recorded ({len(result.rows)} calls, one span each"
          + (f"; {len(others)} spans from other instrumentations" if others else "") + "):\n\n")
    write(render_table(result.rows) + "\n\n")
    write("  input includes cached tokens (gen_ai.usage.input_tokens); estimate is the "
          "CountTokens pre-count\n  (aws.bedrock.count_tokens.input_tokens), drift = input - "
          "estimate; n/a: CountTokens refused (model not countable, or invalid request).\n\n")
    write(quota_and_cost(result.rows) + "\n\n")
    write(f"Metric totals (scope {SCOPE}):\n{render_totals(result.totals)}\n\n")
    if verbose and result.log:
        write("The app's stderr:\n" + "\n".join(f"  {line}" for line in result.log) + "\n\n")
    for check in result.checks:
        write(f"  [ok] {check}\n")
    for problem in result.problems:
        write(f"  [XX] {problem}\n")
    for hint in result.hints:
        write(f"  [!!] {hint}\n")
    if result.problems and result.log and not verbose:
        write("\nThe app's stderr (last lines):\n"
              + "\n".join(f"  {line}" for line in result.log[-15:]) + "\n")
    verdict = "failed" if result.problems else "done"
    write(f"\nDemo {verdict} in {result.seconds:.1f} s. Raw spans and metrics: "
          "bedrock-tokens demo --raw\n")
    out.flush()


# -- command line ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--raw", action="store_true",
                        help="also print the raw spans and metrics the app exported")
    parser.add_argument("--endpoint-url",
                        help="run against this Bedrock Runtime endpoint instead of the built-in "
                             "emulator (needs AWS credentials unless it is on this machine)")
    parser.add_argument("--region",
                        help="run against real Amazon Bedrock in this region (needs AWS "
                             "credentials and model access)")
    parser.add_argument("--precount", choices=PRECOUNT_MODES, default="blocking",
                        help="pre-count mode for the app (default: %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="also print the app's stderr")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds the app may take (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 success, 1 the demo failed a check, 2 no credentials for real Bedrock."""
    real = args.endpoint_url is not None or args.region is not None
    if real and not (args.endpoint_url and _is_loopback(args.endpoint_url)):
        problem = credentials_problem(args.endpoint_url)
        if problem is not None:
            print(f"bedrock-tokens demo: {problem}", file=sys.stderr)
            return 2
    result = run_demo(endpoint_url=args.endpoint_url, region=args.region,
                      precount=args.precount, raw=args.raw, verbose=args.verbose,
                      timeout=args.timeout)
    return 0 if result.ok else 1
