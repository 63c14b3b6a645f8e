"""The declared version floors are true. ``.ci/floor`` runs the whole suite on exactly the
floor set (``.ci/floor-constraints.txt``); these tests say what the floor must be able to do,
so a floor that cannot fails here by name rather than somewhere downstream:

* histograms reach an OTLP backend with this package's buckets (opentelemetry-sdk 1.30.0
  exported the SDK's default bounds, 1.31.1 gave the duration histogram the token buckets;
  the in-memory reader does not show it);
* botocore models CountTokens (pre-count) and cache points (cache counts): botocore
  1.34.116, the old floor, has neither, and pre-count was then silently off;
* where botocore has no CountTokens, the pre-counter says so once.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any, Callable

import botocore
import botocore.session
import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider

from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor, names
from opentelemetry.instrumentation.bedrock_tokens import precount as precount_module

from ..e2e.otlp_receiver import OTLPReceiver, iter_metrics
from ..floor import botocore_has
from .support import default_params, figure, flush_precounts

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / ".ci" / "floor-constraints.txt"


def _floors() -> dict[str, str]:
    """package -> lowest version allowed by pyproject.toml (any extra)."""
    text = (ROOT / "pyproject.toml").read_text()
    found: dict[str, str] = {}
    for name, version in re.findall(r'"([A-Za-z0-9_.-]+) >= ([0-9][^,"]*)', text):
        found.setdefault(name.lower(), version.strip())
    return found


def test_floor_constraints_are_the_declared_floors() -> None:
    from packaging.version import Version

    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", CONSTRAINTS.read_text(), re.M))
    floors = _floors()
    differ = {package: (floors[package], version) for package, version in pinned.items()
              if package in floors and Version(floors[package]) != Version(version)}
    assert differ == {}, "pyproject.toml floor vs .ci/floor-constraints.txt"
    for package in ("opentelemetry-api", "opentelemetry-sdk", "botocore", "boto3",
                    "opentelemetry-instrumentation", "wrapt"):
        assert package in pinned, f"{package} is not pinned to its floor in {CONSTRAINTS}"


def test_histograms_reach_an_otlp_backend_with_our_buckets(
    make_client: Callable[..., Any], bedrock_emulator: Any,
) -> None:
    from importlib.metadata import version

    with OTLPReceiver() as receiver:
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{receiver.url}/v1/metrics", timeout=10),
            export_interval_millis=3_600_000)
        meter_provider = MeterProvider(metric_readers=[reader])
        tracer_provider = TracerProvider()  # sampled calls: pre-counted, so drift is recorded
        instrumentor = BedrockTokensInstrumentor()
        instrumentor.instrument(meter_provider=meter_provider, tracer_provider=tracer_provider,
                                precount="blocking", precount_timeout=5.0)
        try:
            client = make_client()
            client.converse(**default_params("Converse"))
            flush_precounts()
            meter_provider.force_flush()
        finally:
            instrumentor.uninstrument()
            meter_provider.shutdown()
            tracer_provider.shutdown()
        bounds = {metric.name: tuple(metric.histogram.data_points[0].explicit_bounds)
                  for _, _, metric in iter_metrics(receiver.exports("metrics"))
                  if metric.WhichOneof("data") == "histogram"}
    expected = {
        names.METRIC_OPERATION_DURATION: tuple(float(b) for b in names.DURATION_BUCKETS),
        names.METRIC_TOKEN_USAGE: tuple(float(b) for b in names.TOKEN_BUCKETS),
        names.METRIC_COUNT_TOKENS_DRIFT: tuple(float(b) for b in names.DRIFT_BUCKETS),
    }
    wrong = sorted(name for name, want in expected.items() if bounds.get(name) != want)
    sdk = version("opentelemetry-sdk")
    figure(f"histogram buckets exported over OTLP (opentelemetry-sdk {sdk})",
           f"{len(expected) - len(wrong)} of {len(expected)} histograms with their own buckets"
           + (f"; wrong: {', '.join(wrong)}" if wrong else ""))
    assert wrong == [], {name: bounds.get(name) for name in wrong}


@pytest.mark.parametrize(("what", "operation", "path"), [
    ("pre-count", "CountTokens", ("input", "converse")),
    ("pre-count of InvokeModel bodies", "CountTokens", ("input", "invokeModel")),
    ("cache points in Converse", "Converse", ("system",)),
])
def test_botocore_models_what_the_features_need(
    what: str, operation: str, path: tuple[str, ...],
) -> None:
    assert botocore_has(operation, *path), (
        f"botocore {botocore.__version__} has no {operation}.{'.'.join(path)}: {what} "
        "cannot work; the botocore floor in pyproject.toml is too low")
    if operation == "Converse":
        model = botocore.session.get_session().get_service_model("bedrock-runtime")
        assert "cachePoint" in model.shape_for("SystemContentBlock").members, (
            f"botocore {botocore.__version__} has no cachePoint blocks")


def test_missing_count_tokens_is_said_once(
    caplog: pytest.LogCaptureFixture, boto_session: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a client of a service without CountTokens stands for a botocore without it
    monkeypatch.setattr(precount_module, "_warned_no_count_tokens", [])
    other = boto_session.client("sts", region_name="us-east-1", aws_access_key_id="x",
                                aws_secret_access_key="x")
    with caplog.at_level(logging.WARNING, logger=precount_module.__name__):
        assert precount_module._count_input_members(other) is None
        assert precount_module._count_input_members(other) is None
    warnings = [r for r in caplog.records if "CountTokens" in r.getMessage()]
    assert len(warnings) == 1
    assert botocore.__version__ in warnings[0].getMessage()
    assert sys.modules[precount_module.__name__] is precount_module
