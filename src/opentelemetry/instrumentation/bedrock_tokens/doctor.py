"""``bedrock-tokens doctor``: what to run when "I see no tokens".

Nearly every "no tokens" report comes down to one of a handful of causes, and most of them are
invisible from the application: the launcher never loaded this package (disabled by name, a
dependency conflict, a configurator that failed first), nothing exports (no SDK, ``none``
exporters, a sampler that drops everything), a second Bedrock instrumentation doubles or hides
the data, or a setting was mistyped and silently replaced by its default. So the doctor does
not guess from the environment alone: it starts a process the way the user's application is
started, ``opentelemetry-instrument python ...`` with the user's environment, asks that process
what actually got loaded and wired (``process_report()``), and explains the answer.

The parts are separate so tests and other code can use them: ``version_rows``,
``settings_rows``, ``probe_launcher``, ``process_report`` (also usable inside an application
that instruments manually: ``print(explain())``), ``findings``, ``check_count_tokens`` and
``render``. Nothing here runs on the instrumentation's hot path.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Sequence

from . import coexist, config

DIST = "opentelemetry-instrumentation-bedrock-tokens"
ENTRY_POINT = "bedrock_tokens"
_REPORT_MARK = "bedrock-tokens-doctor-report "
_PROBE_CODE = "from opentelemetry.instrumentation.bedrock_tokens.doctor import _probe; _probe()"

OK, INFO, WARN, ERROR = "ok", "info", "warn", "error"
_MARKS = {OK: "[ok]", INFO: "[--]", WARN: "[!!]", ERROR: "[XX]"}

# Packages worth a version line; the ranges come from this package's own metadata.
_PACKAGES = (
    "botocore", "boto3", "wrapt", "opentelemetry-api", "opentelemetry-sdk",
    "opentelemetry-instrumentation", "opentelemetry-semantic-conventions",
    "opentelemetry-instrumentation-botocore", "opentelemetry-distro",
    "opentelemetry-exporter-otlp-proto-http", "opentelemetry-exporter-otlp-proto-grpc",
)
# Which of those a zero-code set-up cannot do without (the rest are informational).
_NEEDED_FOR_LAUNCHER = ("opentelemetry-sdk", "opentelemetry-distro")
# Without these there is nothing to instrument (botocore) or no app and no demo (boto3).
_NEEDED_FOR_APPS = ("botocore", "boto3")
# Variable-name words whose values are never printed (matched as whole "_"-separated words).
_SECRET_WORDS = frozenset({"KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIALS", "AUTHORIZATION"})


@dataclasses.dataclass(frozen=True)
class Finding:
    """One conclusion: how bad, about what, what was seen, and what to do about it."""

    level: str
    topic: str
    message: str
    hint: str = ""


class VersionRow(NamedTuple):
    package: str
    installed: Optional[str]
    required: str  # the range this package declares for it; "" when it declares none
    in_range: Optional[bool]  # None: not installed or no range to compare with


class SettingRow(NamedTuple):
    variable: str
    raw: Optional[str]  # as set in the environment; None when unset
    effective: str
    valid: bool
    description: str


# -- launching -------------------------------------------------------------------------------------
def launcher_command(python: Optional[str] = None) -> list[str]:
    """argv prefix that runs a program under ``opentelemetry-instrument`` of this environment.

    The launcher script next to the interpreter is preferred; when it is missing (an unusual
    install) its entry function is called directly, which does the same thing.
    """
    python = python or sys.executable
    found = shutil.which("opentelemetry-instrument", path=str(Path(python).parent))
    if found:
        return [found, python]
    return [python, "-c",
            "import sys; from opentelemetry.instrumentation.auto_instrumentation import run; "
            "sys.exit(run())", python]


# -- versions --------------------------------------------------------------------------------------
def _declared_ranges() -> dict[str, str]:
    """package -> version range, from this package's Requires-Dist (core first, then extras)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        lines = metadata.requires(DIST) or []
    except metadata.PackageNotFoundError:
        return {}
    ranges: dict[str, str] = {}
    for extra in ("", "instruments", "demo", "test"):
        for line in lines:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": extra}):
                continue
            if req.marker is None and extra:
                continue
            ranges.setdefault(req.name.lower(), str(req.specifier))
    return ranges


def version_rows() -> list[VersionRow]:
    """This package and its neighbours: installed version against the declared range."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    ranges = _declared_ranges()
    rows = []
    try:
        requires_python = metadata.metadata(DIST)["Requires-Python"] or ""
    except metadata.PackageNotFoundError:
        requires_python = ""
    python = ".".join(str(part) for part in sys.version_info[:3])
    rows.append(VersionRow("python", python, requires_python,
                           SpecifierSet(requires_python).contains(python)
                           if requires_python else None))
    for package in (DIST, *_PACKAGES):
        try:
            installed: Optional[str] = metadata.version(package)
        except metadata.PackageNotFoundError:
            installed = None
        required = ranges.get(package, "")
        in_range: Optional[bool] = None
        if installed is not None and required:
            try:
                in_range = SpecifierSet(required).contains(Version(installed), prereleases=True)
            except (InvalidSpecifier, InvalidVersion):
                in_range = None
        rows.append(VersionRow(package, installed, required, in_range))
    return rows


# -- settings --------------------------------------------------------------------------------------
class _Collect(logging.Handler):
    """Keeps the arguments of each warning: the variable a warning names is one of them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.arguments: list[tuple[Any, ...]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        self.arguments.append(args)


def settings_rows(environ: Optional[Mapping[str, str]] = None) -> list[SettingRow]:
    """The effective value of every setting, read exactly as ``instrument()`` reads it.

    ``config.load_settings`` is the one parser; its warnings (one per invalid value, with the
    variable among the log arguments) are captured here instead of printed, and mark the rows
    that are invalid.
    """
    env = dict(os.environ if environ is None else environ)
    logger = logging.getLogger(config.__name__)
    collect = _Collect()
    propagate = logger.propagate
    logger.addHandler(collect)
    logger.propagate = False
    try:
        settings = config.load_settings({}, env)
    finally:
        logger.removeHandler(collect)
        logger.propagate = propagate

    def invalid(variable: str) -> bool:
        return any(variable in args for args in collect.arguments)

    rows = [
        SettingRow(spec.env, env.get(spec.env), repr(getattr(settings, spec.name)),
                   not invalid(spec.env), spec.doc)
        for spec in config.SETTINGS
    ]
    rows.append(SettingRow(
        config.CAPTURE_CONTENT_ENV, env.get(config.CAPTURE_CONTENT_ENV),
        repr(settings.capture_content), not invalid(config.CAPTURE_CONTENT_ENV),
        "Capture message content on spans (true | SPAN_ONLY | SPAN_AND_EVENT; off by default).",
    ))
    return rows


# -- the launched process --------------------------------------------------------------------------
def _header_names(exporter: Any) -> list[str]:
    """Header names an OTLP exporter sends (values never leave the process: they are keys)."""
    for owner in (exporter, getattr(exporter, "_client", None)):
        headers = getattr(owner, "_headers", None)
        if isinstance(headers, Mapping):
            return sorted(str(key).lower() for key in headers)
        if isinstance(headers, (list, tuple)):
            return sorted(str(pair[0]).lower() for pair in headers if len(pair) == 2)
    return []


def _describe_exporter(exporter: Any) -> dict[str, Any]:
    if exporter is None:
        return {"class": None}
    cls = type(exporter)
    found: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    endpoint = getattr(exporter, "_endpoint", None)
    if isinstance(endpoint, str):
        found["endpoint"] = redact_url(endpoint)
    found["headers"] = _header_names(exporter)
    return found


def _tracing_report() -> dict[str, Any]:
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    cls = type(provider)
    report: dict[str, Any] = {"provider": f"{cls.__module__}.{cls.__qualname__}",
                              "sdk": cls.__module__.startswith("opentelemetry.sdk"),
                              "exporters": []}
    sampler = getattr(provider, "sampler", None)
    if sampler is not None:
        describe = getattr(sampler, "get_description", None)
        report["sampler"] = describe() if callable(describe) else type(sampler).__name__
    multi = getattr(provider, "_active_span_processor", None)
    for processor in getattr(multi, "_span_processors", ()):
        exporter = getattr(processor, "span_exporter", None)
        entry = _describe_exporter(exporter)
        entry["processor"] = type(processor).__name__
        report["exporters"].append(entry)
    return report


def _metrics_report() -> dict[str, Any]:
    from opentelemetry import metrics

    provider = metrics.get_meter_provider()
    cls = type(provider)
    report: dict[str, Any] = {"provider": f"{cls.__module__}.{cls.__qualname__}",
                              "sdk": cls.__module__.startswith("opentelemetry.sdk"),
                              "readers": []}
    sdk_config = getattr(provider, "_sdk_config", None)
    readers = getattr(sdk_config, "metric_readers", None)
    for reader in readers or getattr(provider, "_metric_readers", None) or ():
        entry = _describe_exporter(getattr(reader, "_exporter", None))
        entry["reader"] = type(reader).__name__
        temporality = getattr(reader, "_instrument_class_temporality", {})
        for instrument, value in temporality.items():
            if getattr(instrument, "__name__", "").lstrip("_") == "Histogram":
                entry["histogram_temporality"] = getattr(value, "name", str(value))
        report["readers"].append(entry)
    return report


def _instrumentors(disabled: Sequence[str]) -> list[dict[str, Any]]:
    """Every ``opentelemetry_instrumentor`` entry point and whether it is active here.

    Activity is read from the instrumentor singletons of modules already imported, so nothing
    is imported (or instrumented) by asking.
    """
    conflicts: Any = None
    try:
        from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

        conflicts = get_dist_dependency_conflicts
    except ImportError:  # very old opentelemetry-instrumentation
        pass

    seen: set[tuple[str, str]] = set()
    found = []
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != "opentelemetry_instrumentor" or (ep.name, ep.value) in seen:
                continue
            seen.add((ep.name, ep.value))
            module, _, attr = ep.value.partition(":")
            entry: dict[str, Any] = {
                "name": ep.name, "target": ep.value,
                "distribution": dist.metadata["Name"], "version": dist.version,
                "active": coexist._instrumented(module, attr),
            }
            if not entry["active"]:
                if "*" in disabled or ep.name in disabled:
                    entry["skipped"] = "disabled by OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
                elif conflicts is not None:
                    conflict = conflicts(dist)
                    if conflict is not None:
                        entry["skipped"] = str(conflict)
            found.append(entry)
    return sorted(found, key=lambda item: str(item["name"]))


def process_report() -> dict[str, Any]:
    """What this process has loaded and wired: instrumentors, our handler, contrib, exporters.

    Called in a process started by the launcher (``probe_launcher``), or inside an application
    that instruments manually, after its set-up, to check the same things there.
    """
    from botocore.client import BaseClient

    from . import _ours_in_chain, patch

    disabled = [name.strip() for name in
                os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
                if name.strip()]
    handler = patch.active
    settings = None
    if handler is not None:
        settings = {key: (value if isinstance(value, (bool, int, float, str)) or value is None
                          else _summarised(value))
                    for key, value in dataclasses.asdict(handler.settings).items()}
    registry = coexist._registry()
    contrib_entry = registry.get("bedrock-runtime") if registry is not None else None
    try:
        contrib_version: Optional[str] = metadata.version(coexist.CONTRIB[2])
    except metadata.PackageNotFoundError:
        contrib_version = None
    replace_contrib = handler.settings.replace_contrib if handler is not None else True
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "launcher": "opentelemetry.instrumentation.auto_instrumentation" in sys.modules,
        "disabled": disabled,
        "instrumentors": _instrumentors(disabled),
        "ours": {
            "active": handler is not None,
            "wrapped": _ours_in_chain(BaseClient, patch.make_api_call_wrapper),
            "settings": settings,
            "prices": _prices_report(handler),
        },
        "contrib": {
            "installed": contrib_version,
            "active": coexist._instrumented(coexist.CONTRIB[0], coexist.CONTRIB[1]),
            "registry_found": registry is not None,
            "stepped_aside": contrib_entry is not None and hasattr(contrib_entry, coexist._MARK),
        },
        "conflicts": [list(pair) for pair in coexist.active_conflicts(replace_contrib)],
        "tracing": _tracing_report(),
        "metrics": _metrics_report(),
    }


def _summarised(value: Any) -> str:
    """A setting's value for the report: a price table passed as a dict is not printed."""
    if isinstance(value, Mapping) and isinstance(value.get("models"), Mapping):
        return f"<price table: {len(value['models'])} models>"
    return repr(value)


def _prices_report(handler: Any) -> Optional[dict[str, Any]]:
    """Whether the active instrumentation prices calls, and the models it was called with that
    its price table does not know (only a process that made calls has any)."""
    extras = getattr(handler, "extras", None)
    if extras is None:
        return None
    table = extras.prices
    return {
        "loaded": table is not None,
        "source": table.source if table is not None else None,
        "unpriced": extras.unpriced_models(),
    }


def price_table_findings(env: Mapping[str, str]) -> list[Finding]:
    """The price table named by the environment: can it be used? (Loaded here the way the
    instrumentation loads it, so the same problem is reported with the field that is wrong.)"""
    from . import pricing

    path = env.get(pricing.PRICES_ENV, "").strip()
    if not path:
        return []
    try:
        table = pricing.PriceTable(pricing.read_table(path), f"{pricing.PRICES_ENV}={path}")
    except Exception as exc:
        return [Finding(WARN, "cost", f"the price table cannot be used, so no cost is recorded: "
                        f"{type(exc).__name__}: {exc}", "See docs/cost.md for the format.")]
    return [Finding(OK, "cost", f"price table {path}: {table.model_count} model entries")]


def _unpriced_findings(report: Mapping[str, Any]) -> list[Finding]:
    prices = (report.get("ours") or {}).get("prices") or {}
    unpriced = prices.get("unpriced") or []
    if not prices.get("loaded") or not unpriced:
        return []
    shown = ", ".join(unpriced[:20]) + (" ..." if len(unpriced) > 20 else "")
    return [Finding(WARN, "cost", f"{len(unpriced)} model(s) called without a price (their "
                    f"calls have no aws.bedrock.usage.cost): {shown}",
                    "Add them to the price table (docs/cost.md); keys may be patterns.")]


def _probe() -> None:
    """Entry of the probe process: print the report and leave without running exit hooks,
    so the SDK's shutdown never tries to reach an exporter endpoint for nothing."""
    try:
        report: dict[str, Any] = process_report()
    except Exception as exc:  # report the failure rather than a traceback
        report = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(_REPORT_MARK + json.dumps(report) + "\n")
    sys.stdout.flush()
    os._exit(0)


class Probe(NamedTuple):
    report: Optional[dict[str, Any]]
    returncode: Optional[int]
    log: str  # what the launcher and the process wrote to stderr
    error: Optional[str]  # why there is no report


def probe_launcher(
    environ: Optional[Mapping[str, str]] = None, timeout: float = 60.0, cwd: Optional[str] = None
) -> Probe:
    """Start ``opentelemetry-instrument python`` with ``environ`` and return its report."""
    argv = [*launcher_command(), "-c", _PROBE_CODE]
    try:
        done = subprocess.run(
            argv, env=dict(os.environ if environ is None else environ), cwd=cwd,
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        return Probe(None, None, "", f"the launched process did not answer within {timeout:g} s")
    except OSError as exc:
        return Probe(None, None, "", f"could not start {argv[0]}: {exc}")
    report = None
    for line in done.stdout.splitlines():
        if line.startswith(_REPORT_MARK):
            report = json.loads(line[len(_REPORT_MARK):])
    error = None if report is not None else (
        f"the launched process exited with {done.returncode} without a report")
    return Probe(report, done.returncode, done.stderr, error)


def launcher_failure(log: str) -> Optional[str]:
    """The exception that stopped the launcher's initialisation, from its log, if any.

    The launcher loads instrumentors only after the distro and configurator succeeded, so a
    configurator error (typically the OTLP gRPC exporter missing) means no instrumentation at
    all, reported only as a traceback on stderr.
    """
    if "Failed to auto initialize OpenTelemetry" not in log:
        return None
    tail = [line for line in log.splitlines() if line.strip() and not line.startswith(" ")]
    return tail[-1].strip() if tail else "unknown error"


def _summary(log: str) -> list[str]:
    """Log lines without traceback bodies: messages and exception lines."""
    return [line for line in log.splitlines()
            if line.strip() and not line.startswith(" ") and not line.startswith("Traceback")]


# -- live CountTokens check ------------------------------------------------------------------------
_CREDENTIAL_CODES = frozenset({
    "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
    "InvalidClientTokenId", "IncompleteSignature", "MissingAuthenticationToken",
})


def check_count_tokens(
    region: Optional[str], endpoint_url: Optional[str], model_id: str
) -> Finding:
    """One real CountTokens call: are the credentials allowed to pre-count with this model?"""
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    topic = "CountTokens permission"
    session = botocore.session.get_session()
    region = region or session.get_config_variable("region") or "us-east-1"
    where = endpoint_url or f"Bedrock in {region}"
    if session.get_credentials() is None:
        return Finding(ERROR, topic, "no AWS credentials found",
                       "Configure credentials (AWS_PROFILE, aws sso login, environment "
                       "variables or an instance role) and run again.")
    client = session.create_client(
        "bedrock-runtime", region_name=region, endpoint_url=endpoint_url,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=15),
    )
    request = {"converse": {"messages": [{"role": "user", "content": [{"text": "ping"}]}]}}
    try:
        if not hasattr(client, "count_tokens"):
            return Finding(ERROR, topic, f"botocore {botocore.__version__} has no CountTokens",
                           "Upgrade botocore (and boto3) to a release with bedrock-runtime "
                           "CountTokens; pre-counting is skipped until then.")
        answer = client.count_tokens(modelId=model_id, input=request)
    except NoCredentialsError:
        return Finding(ERROR, topic, "no AWS credentials found",
                       "Configure credentials and run again.")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code == "AccessDeniedException":
            return Finding(ERROR, topic, f"{where}: access denied for {model_id}: {message}",
                           "Grant bedrock:CountTokens on this model to the caller's IAM "
                           "identity (pre-counting stays off for this client until then).")
        if code in _CREDENTIAL_CODES:
            return Finding(ERROR, topic, f"{where} rejected the credentials ({code}): {message}",
                           "Refresh the credentials (e.g. aws sso login) and run again.")
        if code in ("ValidationException", "ResourceNotFoundException"):
            return Finding(WARN, topic, f"{where}: {model_id} cannot be counted ({code}: "
                           f"{message})", "CountTokens supports only some models; the "
                           "instrumentation skips pre-counts for models the service refuses.")
        return Finding(ERROR, topic, f"{where}: {code or type(exc).__name__}: {message}")
    except BotoCoreError as exc:
        return Finding(ERROR, topic, f"{where}: {exc}",
                       "Check the endpoint URL, the region and the network path to it.")
    finally:
        client.close()
    return Finding(OK, topic, f"{where}: allowed for {model_id} "
                   f"({answer.get('inputTokens')} tokens in a one-word prompt)")


# -- conclusions -----------------------------------------------------------------------------------
def _precount_findings(settings: Sequence[SettingRow]) -> list[Finding]:
    """Pre-counting needs a botocore whose bedrock-runtime model has CountTokens."""
    mode = next((row.effective for row in settings
                 if row.variable == config.PREFIX + "PRECOUNT"), "'off'")
    if mode == "'off'":
        return []
    import botocore
    import botocore.session

    try:
        model = botocore.session.get_session().get_service_model("bedrock-runtime")
        has_count = "CountTokens" in model.operation_names
    except Exception:  # no bedrock-runtime model at all: the version row says why
        has_count = False
    if has_count:
        return [Finding(OK, "pre-count", f"pre-count {mode}: botocore {botocore.__version__} "
                        "has CountTokens")]
    return [Finding(WARN, "pre-count", f"pre-count {mode} is set but botocore "
                    f"{botocore.__version__} has no bedrock-runtime CountTokens: nothing is "
                    "pre-counted", "Upgrade botocore and boto3.")]


def _agent_findings(settings: Sequence[SettingRow]) -> list[Finding]:
    """Agents and flows report tokens only in trace events, which the caller must ask for."""
    on = next((row.effective for row in settings
               if row.variable == config.PREFIX + "AGENT_ENABLE_TRACE"), "False")
    if on == "True":
        return [Finding(INFO, "agents", "agent_enable_trace is on: InvokeAgent, "
                        "InvokeInlineAgent and InvokeFlow calls that leave enableTrace unset "
                        "get it, so their model steps are counted; your code then receives "
                        "the trace events too")]
    return [Finding(INFO, "agents", "Bedrock Agents and Flows (bedrock-agent-runtime) report "
                    "token usage only in trace events: calls without enableTrace=True get "
                    "spans but no token counts",
                    "Pass enableTrace=True, or set "
                    f"{config.PREFIX}AGENT_ENABLE_TRACE=true to have it set for you (the "
                    "trace events are then delivered to your code as well).")]


def _env_findings(env: Mapping[str, str]) -> list[Finding]:
    found = []
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        found.append(Finding(ERROR, "SDK", "OTEL_SDK_DISABLED=true: the SDK records nothing",
                             "Unset OTEL_SDK_DISABLED."))
    for signal in ("TRACES", "METRICS"):
        value = env.get(f"OTEL_{signal}_EXPORTER", "").strip().lower()
        if value == "none":
            what = "spans (token counts per call)" if signal == "TRACES" else "token metrics"
            found.append(Finding(WARN, "exporters", f"OTEL_{signal}_EXPORTER=none: {what} are "
                                 "recorded but never exported"))
    return found


def _exporter_findings(report: Mapping[str, Any], env: Mapping[str, str]) -> list[Finding]:
    found = []
    tracing, metrics_ = report.get("tracing", {}), report.get("metrics", {})
    if not tracing.get("sdk"):
        found.append(Finding(ERROR, "SDK", f"no SDK tracer provider ({tracing.get('provider')}):"
                             " spans go nowhere",
                             'Install the SDK set-up the launcher uses: pip install '
                             '"opentelemetry-distro" "opentelemetry-exporter-otlp-proto-http".'))
    elif not tracing.get("exporters"):
        found.append(Finding(WARN, "exporters", "the tracer provider has no span exporter"))
    if str(tracing.get("sampler", "")).startswith("AlwaysOffSampler"):
        found.append(Finding(ERROR, "sampling", "the sampler drops every span (always_off)",
                             "Set OTEL_TRACES_SAMPLER=parentbased_always_on or a ratio."))
    if not metrics_.get("sdk"):
        found.append(Finding(WARN, "SDK", f"no SDK meter provider ({metrics_.get('provider')}):"
                             " token metrics go nowhere"))
    for entry in tracing.get("exporters", []):
        found.append(Finding(INFO, "exporters", f"spans -> {entry.get('class')} "
                             f"{entry.get('endpoint', '')}".rstrip()))
        endpoint, headers = str(entry.get("endpoint", "")), entry.get("headers", [])
        if "datadoghq" in endpoint and "dd-otlp-source" not in headers:
            found.append(Finding(WARN, "Datadog", "spans go to Datadog's OTLP intake without a "
                                 "dd-otlp-source header: LLM Observability expects it",
                                 "Add dd-otlp-source=datadog to "
                                 "OTEL_EXPORTER_OTLP_TRACES_HEADERS."))
    for entry in [*tracing.get("exporters", []), *metrics_.get("readers", [])]:
        endpoint, headers = str(entry.get("endpoint", "")), entry.get("headers", [])
        for host, header in (("honeycomb.io", "x-honeycomb-team"), ("datadoghq", "dd-api-key")):
            if host in endpoint and header not in headers:
                found.append(Finding(ERROR, "exporters", f"{endpoint} is sent no {header} "
                                     "header: the backend rejects the data",
                                     "Set it in OTEL_EXPORTER_OTLP_HEADERS or the per-signal "
                                     "OTEL_EXPORTER_OTLP_{TRACES,METRICS}_HEADERS (a per-signal "
                                     "variable replaces the general one entirely)."))
    for entry in metrics_.get("readers", []):
        temporality = entry.get("histogram_temporality", "?")
        found.append(Finding(INFO, "exporters", f"metrics -> {entry.get('class')} "
                             f"{entry.get('endpoint', '')} (histograms {temporality})"))
        endpoint = str(entry.get("endpoint", ""))
        headers = entry.get("headers", [])
        if "honeycomb.io" in endpoint and "x-honeycomb-dataset" not in headers:
            found.append(Finding(WARN, "Honeycomb", "metrics are sent to Honeycomb without an "
                                 "x-honeycomb-dataset header: they land in unknown_metrics",
                                 "Set OTEL_EXPORTER_OTLP_METRICS_HEADERS=x-honeycomb-team=KEY,"
                                 "x-honeycomb-dataset=NAME (see docs/backends.md)."))
        if "datadoghq" in endpoint and temporality != "DELTA":
            found.append(Finding(ERROR, "Datadog", "metrics go to Datadog with cumulative "
                                 "temporality: the intake needs delta",
                                 "Set OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta."))
    return found


def findings(
    report: Optional[Mapping[str, Any]],
    settings: Sequence[SettingRow],
    versions: Sequence[VersionRow],
    environ: Optional[Mapping[str, str]] = None,
    launcher_log: str = "",
) -> list[Finding]:
    """Every conclusion, problems first."""
    env = os.environ if environ is None else environ
    found = _findings(report, settings, versions, env, launcher_log)
    order = {ERROR: 0, WARN: 1, OK: 2, INFO: 3}
    return sorted(found, key=lambda f: order[f.level])


def _findings(
    report: Optional[Mapping[str, Any]],
    settings: Sequence[SettingRow],
    versions: Sequence[VersionRow],
    env: Mapping[str, str],
    launcher_log: str,
) -> list[Finding]:
    found: list[Finding] = []
    for row in versions:
        if row.in_range is False:
            found.append(Finding(ERROR, "versions", f"{row.package} {row.installed} is outside "
                                 f"the supported range {row.required}",
                                 f'pip install "{row.package}{row.required}"'))
        elif row.installed is None and row.package in _NEEDED_FOR_APPS:
            found.append(Finding(ERROR, "versions", f"{row.package} is not installed: no "
                                 "Bedrock call can be made or traced (bedrock-tokens demo "
                                 "needs it too)", f'pip install "{row.package}{row.required}"'))
        elif row.installed is None and row.package in _NEEDED_FOR_LAUNCHER:
            found.append(Finding(WARN, "versions", f"{row.package} is not installed: the "
                                 "launcher has no SDK to export with",
                                 f'pip install "{row.package}{row.required}"'))
    found.extend(_precount_findings(settings))
    found.extend(_agent_findings(settings))
    for srow in settings:
        if not srow.valid:
            found.append(Finding(WARN, "settings", f"{srow.variable}={srow.raw!r} is invalid; "
                                 f"{srow.effective} is used instead", srow.description))
    found.extend(_env_findings(env))
    found.extend(price_table_findings(env))
    failure = launcher_failure(launcher_log)
    if failure is not None:
        found.append(Finding(ERROR, "launcher", "opentelemetry-instrument failed before loading "
                             f"any instrumentation: {failure}",
                             "With opentelemetry-distro, OTEL_TRACES_EXPORTER and "
                             "OTEL_METRICS_EXPORTER default to otlp over gRPC: install "
                             "opentelemetry-exporter-otlp-proto-grpc, or set "
                             "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf with "
                             "opentelemetry-exporter-otlp-proto-http installed."
                             if "otlp_proto_grpc" in failure else ""))
    if report is None:
        return found
    if report.get("error"):
        found.append(Finding(ERROR, "launcher", f"the probe failed: {report['error']}"))
        return found
    ours = report.get("ours", {})
    mine = [item for item in report.get("instrumentors", []) if item["name"] == ENTRY_POINT]
    if ours.get("active") and ours.get("wrapped"):
        found.append(Finding(OK, "instrumentation", "bedrock_tokens is active: every "
                             "bedrock-runtime call goes through it"))
    elif ours.get("active"):
        found.append(Finding(ERROR, "instrumentation", "bedrock_tokens is active but its "
                             "wrapper is missing from botocore's BaseClient._make_api_call",
                             "Something replaced the method after instrumentation; look for "
                             "code assigning BaseClient._make_api_call."))
    else:
        if failure is not None:
            reason: Optional[str] = "the launcher failed first (see above)"
            hint = "Fix the launcher error; instrumentors are loaded after it."
        else:
            reason = mine[0].get("skipped") if mine else "its entry point is not installed"
            hint = ("Remove bedrock_tokens from OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, fix the "
                    "launcher error in the log, or reinstall the package.")
        found.append(Finding(ERROR, "instrumentation", "bedrock_tokens is NOT active in a "
                             f"process started by the launcher: {reason or 'see the log'}", hint))
    contrib = report.get("contrib", {})
    if contrib.get("active"):
        if contrib.get("stepped_aside") and ours.get("active"):
            found.append(Finding(OK, "conflicts", "contrib botocore is active; its Bedrock "
                                 "extension is neutralised (one span and one set of metrics "
                                 "per call)"))
        elif not contrib.get("registry_found"):
            found.append(Finding(WARN, "conflicts", f"contrib botocore "
                                 f"{contrib.get('installed')} is active but its extension "
                                 "registry was not found: it cannot be asked to step aside"))
    for dist, entry_point in report.get("conflicts", []):
        found.append(Finding(ERROR, "conflicts", f"{dist} also instruments Bedrock: every call "
                             "gets a second span and its tokens are counted twice",
                             f"Disable one of the two: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="
                             f"{entry_point} (theirs) or =bedrock_tokens (ours)"
                             + (", or set OTEL_INSTRUMENTATION_BEDROCK_TOKENS_REPLACE_CONTRIB="
                                "true" if entry_point == "botocore" else "") + "."))
    found.extend(_unpriced_findings(report))
    if failure is None:  # otherwise no provider was set up: a consequence, not news
        found.extend(_exporter_findings(report, env))
    return found


# -- output ----------------------------------------------------------------------------------------
# user:password@ in a URL (with or without a scheme): the part before "@" in the authority.
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?[^/?#@\s]*@")


def redact_url(url: str) -> str:
    """A URL without its userinfo (``https://user:pw@host`` -> ``https://<redacted>@host``)."""
    return _USERINFO.sub(lambda m: f"{m['scheme'] or ''}<redacted>@", url.strip(), count=1)


def _redact(name: str, value: str) -> str:
    """Environment values shown without secrets: headers and resource attributes keep their
    keys only, endpoints lose their userinfo."""
    if "HEADERS" in name or name.endswith("RESOURCE_ATTRIBUTES"):
        return ",".join(part.split("=", 1)[0].strip() + "=<redacted>"
                        for part in value.split(",") if part.strip())
    if _SECRET_WORDS.intersection(name.upper().split("_")):
        return "<redacted>"
    if name.endswith("ENDPOINT"):
        return redact_url(value)
    return value


def render(
    versions: Sequence[VersionRow],
    settings: Sequence[SettingRow],
    probe: Optional[Probe],
    found: Sequence[Finding],
    environ: Optional[Mapping[str, str]] = None,
) -> str:
    env = os.environ if environ is None else environ
    lines = ["bedrock-tokens doctor", "", "Installed versions (range declared by this package):"]
    for row in versions:
        state = ("not installed" if row.installed is None else
                 "ok" if row.in_range else "OUT OF RANGE" if row.in_range is False else "")
        lines.append(f"  {row.package:<46} {row.installed or '-':<14} {row.required or '-':<22}"
                     f" {state}".rstrip())
    lines += ["", "Settings (effective values; [!!] marks an invalid value replaced by the "
              "default):"]
    for srow in settings:
        mark = "[!!]" if not srow.valid else "    "
        shown = "" if srow.raw is None else f"  (set: {srow.raw!r})"
        lines.append(f"  {mark} {srow.variable:<56} {srow.effective}{shown}")
    otel = sorted(key for key in env if key.startswith("OTEL_"))
    lines += ["", "OpenTelemetry environment:" if otel else "OpenTelemetry environment: (none)"]
    lines += [f"  {key}={_redact(key, env[key])}" for key in otel]
    if probe is not None:
        lines += ["", "A process started by opentelemetry-instrument:"]
        report = probe.report or {}
        if probe.error:
            lines.append(f"  [XX] {probe.error}")
        for item in report.get("instrumentors", []):
            if item["active"]:
                state = "active"
            else:
                state = "not active" + (f" ({item['skipped']})" if item.get("skipped") else "")
            lines.append(f"  {item['name']:<22} {item['distribution']} {item['version']}: "
                         f"{state}")
        log = _summary(probe.log)
        if log:
            lines += ["  Launcher log (stderr, tracebacks omitted):"]
            lines += [f"    {line}" for line in log[-12:]]
    lines += ["", "Findings:"]
    for finding in found:
        lines.append(f"  {_MARKS[finding.level]} {finding.topic}: {finding.message}")
        if finding.hint:
            lines.append(f"       -> {finding.hint}")
    problems = sum(1 for f in found if f.level == ERROR)
    warnings = sum(1 for f in found if f.level == WARN)
    lines += ["", f"{problems} problem(s), {warnings} warning(s)."]
    return "\n".join(lines)


def explain() -> str:
    """The doctor's conclusions about the current process (for manual instrumentation)."""
    versions, settings = version_rows(), settings_rows()
    report = process_report()
    return render(versions, settings, None, findings(report, settings, versions))


# -- command line ----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the whole report as JSON instead of text")
    parser.add_argument("--no-launch", action="store_true",
                        help="skip starting a process under opentelemetry-instrument")
    parser.add_argument("--check-count-tokens", action="store_true",
                        help="make one real CountTokens call to check credentials and the "
                             "bedrock:CountTokens permission (implied by --endpoint-url/--region)")
    parser.add_argument("--endpoint-url", help="Bedrock Runtime endpoint for the check")
    parser.add_argument("--region", help="AWS region for the check")
    parser.add_argument("--model-id", default="anthropic.claude-3-5-haiku-20241022-v1:0",
                        help="model to count with (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the launched process (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Exit status 1 when any problem (not a mere warning) was found."""
    versions, settings = version_rows(), settings_rows()
    probe = None if args.no_launch else probe_launcher(timeout=args.timeout)
    found = findings(probe.report if probe is not None else None, settings, versions,
                     launcher_log=probe.log if probe is not None else "")
    if probe is not None and probe.report is None:
        found.insert(0, Finding(ERROR, "launcher", probe.error or "no report"))
    if args.check_count_tokens or args.endpoint_url or args.region:
        found.insert(0, check_count_tokens(args.region, args.endpoint_url, args.model_id))
    if args.json:
        print(json.dumps({
            "versions": [row._asdict() for row in versions],
            "settings": [row._asdict() for row in settings],
            "process": probe.report if probe is not None else None,
            "launcher_log": probe.log if probe is not None else None,
            "findings": [dataclasses.asdict(f) for f in found],
        }, indent=2))
    else:
        print(render(versions, settings, probe, found))
    return 1 if any(f.level == ERROR for f in found) else 0
