"""Inference-profile resolution: caching, bounds, timeouts, refresh, AccessDenied.

The control-plane client is a stand-in here (the lookup's bookkeeping is what is tested);
the end-to-end resolution through real botocore against the emulator is in
tests/test_cost_e2e.py.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from opentelemetry import context
from opentelemetry.instrumentation.bedrock_tokens import profiles
from opentelemetry.instrumentation.bedrock_tokens.profiles import ProfileResolver

APP = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"


def _answer(*regions: str) -> dict[str, Any]:
    return {"models": [{"modelArn": f"arn:aws:bedrock:{r}::foundation-model/{HAIKU}"}
                       for r in regions]}


class _Meta:
    region_name = "us-east-1"
    endpoint_url = "https://bedrock-runtime.us-east-1.amazonaws.com"


class _Runtime:
    meta = _Meta()


class _Control:
    def __init__(self, delay: float = 0.0, error: str | None = None) -> None:
        self.calls: list[str] = []
        self.delay = delay
        self.error = error
        self.suppressed: list[Any] = []
        self.release = threading.Event()
        self.release.set()

    def get_inference_profile(self, inferenceProfileIdentifier: str) -> dict[str, Any]:
        self.calls.append(inferenceProfileIdentifier)
        self.suppressed.append(context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))
        self.release.wait(5)
        time.sleep(self.delay)
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "no"}},
                              "GetInferenceProfile")
        return _answer("us-east-1", "us-west-2")


def _resolver(control: _Control, **kwargs: Any) -> ProfileResolver:
    return ProfileResolver(client_factory=lambda runtime: control, **kwargs)


def test_resolves_an_application_profile_once_and_caches_it() -> None:
    control = _Control()
    resolver = _resolver(control, timeout=2.0)
    runtime = _Runtime()
    assert resolver.resolve(runtime, APP) == HAIKU
    assert resolver.resolve(runtime, APP) == HAIKU
    assert control.calls == [APP]
    assert control.suppressed == [True]  # no instrumentation traces the lookup


def test_ids_that_say_their_model_are_never_looked_up() -> None:
    control = _Control()
    resolver = _resolver(control)
    for model in (HAIKU, "us." + HAIKU, "arn:aws:bedrock:us-east-1:1:inference-profile/us."
                  + HAIKU):
        assert resolver.resolve(_Runtime(), model) is None
    assert control.calls == []


def test_the_first_lookup_is_bounded_and_a_late_answer_serves_the_next_call() -> None:
    control = _Control(delay=0.3)
    resolver = _resolver(control, timeout=0.05)
    runtime = _Runtime()
    started = time.perf_counter()
    assert resolver.resolve(runtime, APP) is None
    assert time.perf_counter() - started < 0.25
    # while the lookup runs, other calls do not wait at all
    started = time.perf_counter()
    assert resolver.resolve(runtime, APP) is None
    assert time.perf_counter() - started < 0.02
    deadline = time.monotonic() + 5
    while resolver.resolve(runtime, APP) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert resolver.resolve(runtime, APP) == HAIKU
    assert control.calls == [APP]


def test_an_expired_answer_is_served_while_it_is_refreshed_behind() -> None:
    now = [1000.0]
    control = _Control()
    resolver = _resolver(control, timeout=2.0, clock=lambda: now[0])
    runtime = _Runtime()
    assert resolver.resolve(runtime, APP) == HAIKU
    now[0] += profiles.RESOLVED_TTL + 1
    control.release.clear()  # the refresh blocks: the caller must not
    started = time.perf_counter()
    assert resolver.resolve(runtime, APP) == HAIKU
    assert time.perf_counter() - started < 0.05
    control.release.set()
    deadline = time.monotonic() + 5
    while len(control.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert control.calls == [APP, APP]


def test_the_cache_is_bounded() -> None:
    control = _Control()
    resolver = _resolver(control, timeout=2.0, max_entries=3)
    runtime = _Runtime()
    for n in range(10):
        assert resolver.resolve(runtime, f"{APP}{n}") == HAIKU
    assert len(resolver._answers) == 3


def test_access_denied_disables_resolution_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    control = _Control(error="AccessDeniedException")
    resolver = _resolver(control, timeout=2.0)
    with caplog.at_level(logging.WARNING):
        assert resolver.resolve(_Runtime(), APP) is None
        assert resolver.resolve(_Runtime(), APP + "2") is None
        assert resolver.resolve(_Runtime(), APP + "3") is None
    assert resolver.disabled
    assert control.calls == [APP]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_an_unknown_profile_is_remembered_as_unknown() -> None:
    control = _Control(error="ResourceNotFoundException")
    resolver = _resolver(control, timeout=2.0)
    assert resolver.resolve(_Runtime(), APP) is None
    assert resolver.resolve(_Runtime(), APP) is None
    assert control.calls == [APP]
    assert not resolver.disabled


@pytest.mark.parametrize("runtime, control", [
    ("https://bedrock-runtime.us-east-1.amazonaws.com",
     "https://bedrock.us-east-1.amazonaws.com"),
    ("https://bedrock-runtime-fips.us-east-1.amazonaws.com",
     "https://bedrock-fips.us-east-1.amazonaws.com"),
    ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
    (None, None),
])
def test_control_plane_url(runtime: str | None, control: str | None) -> None:
    assert profiles.control_plane_url(runtime) == control


def test_base_model_of_answers() -> None:
    assert profiles.base_model_of(_answer("us-east-1", "us-west-2")) == HAIKU
    mixed = {"models": [{"modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"},
                        {"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/"
                                     "anthropic.claude-3-haiku-20240307-v1:0"}]}
    assert profiles.base_model_of(mixed) is None
    assert profiles.base_model_of({"models": []}) is None
    assert profiles.base_model_of({"models": [{"modelArn": 3}]}) is None
    assert profiles.base_model_of(None) is None


# -- through real botocore, against the emulator's control-plane route ------------------------
def test_resolution_with_the_callers_client_against_the_emulator(
    bedrock_emulator: Any, bedrock_client: Any
) -> None:
    bedrock_emulator.register_alias(APP, "us." + HAIKU)
    resolver = ProfileResolver(timeout=10.0)
    assert resolver.resolve(bedrock_client, APP) == HAIKU
    lookups = [r for r in bedrock_emulator.requests if r.operation == "GetInferenceProfile"]
    assert [(r.method, r.model_id) for r in lookups] == [("GET", APP)]
    assert lookups[0].headers.get("authorization", "").startswith("AWS4-HMAC-SHA256")
    assert resolver.resolve(bedrock_client, APP) == HAIKU  # cached: no second request
    assert len([r for r in bedrock_emulator.requests
                if r.operation == "GetInferenceProfile"]) == 1


def test_unknown_profile_and_access_denied_against_the_emulator(
    bedrock_emulator: Any, bedrock_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario

    resolver = ProfileResolver(timeout=10.0)
    assert resolver.resolve(bedrock_client, APP) is None
    assert not resolver.disabled
    bedrock_emulator.register_alias(APP + "x", HAIKU)
    bedrock_emulator.set_scenario(Scenario(error_status=403,
                                           operations=("GetInferenceProfile",)))
    with caplog.at_level(logging.WARNING):
        assert resolver.resolve(bedrock_client, APP + "x") is None
    assert resolver.disabled
    assert "GetInferenceProfile was denied" in caplog.text
