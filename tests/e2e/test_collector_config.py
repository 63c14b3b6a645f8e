"""examples/collector.yaml against the documented configuration schema of its components.

No Collector binary is available here, so the components' own published schemas are
transcribed below (the ``config.schema.yaml`` files the Collector repositories generate,
v0.157.0): receiver ``otlp`` (receiver/otlpreceiver), exporter ``otlp_http``
(exporter/otlphttpexporter, HTTP client settings from config/confighttp ``client_config``,
``sending_queue`` from exporter/exporterhelper ``queue_batch_config``) and processor
``cumulative_to_delta`` (contrib processor/cumulativetodeltaprocessor). The test walks the file
against them: every key must be documented and of the documented type, every component a
pipeline names must be defined (and every defined one used), and no deprecated name may
appear: ``otlphttp`` (renamed ``otlp_http``, collector v0.144.0, #14397), ``otlp`` as an
exporter (renamed ``otlp_grpc``, #14403), ``cumulativetodelta`` (renamed ``cumulative_to_delta``,
contrib v0.157.0, #45339) and the ``batch`` processor (deprecated in favour of exporter-level
batching, "Deprecating the Collector Batch Processor", opentelemetry.io 2026).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "collector.yaml"

# A schema is a type name, or a dict of property -> schema (an object), or a list [item].
STR, INT, BOOL, DURATION = "string", "integer", "boolean", "duration"
_STR_MAP = {"*": STR}  # configopaque.map_list: header name -> value

_TLS_CLIENT = {"insecure": BOOL, "insecure_skip_verify": BOOL, "ca_file": STR, "cert_file": STR,
               "key_file": STR, "server_name_override": STR, "min_version": STR,
               "max_version": STR, "include_system_ca_certs_pool": BOOL,
               "reload_interval": DURATION}
_HTTP_CLIENT = {
    "endpoint": STR, "proxy_url": STR, "tls": _TLS_CLIENT, "read_buffer_size": INT,
    "write_buffer_size": INT, "timeout": DURATION, "headers": _STR_MAP, "compression": STR,
    "max_conns_per_host": INT, "force_attempt_http2": BOOL, "http2_ping_timeout": DURATION,
    "http2_read_idle_timeout": DURATION,
    "keepalive": {"enabled": BOOL, "idle_conn_timeout": DURATION, "max_idle_conns": INT,
                  "max_idle_conns_per_host": INT},
}
_QUEUE_BATCH = {
    "enabled": BOOL, "num_consumers": INT, "queue_size": INT, "sizer": STR,
    "block_on_overflow": BOOL, "wait_for_result": BOOL, "storage": STR,
    "batch": {"flush_timeout": DURATION, "min_size": INT, "max_size": INT, "sizer": STR,
              "partition": {"metadata_keys": [STR]}},
}
_RETRY = {"enabled": BOOL, "initial_interval": DURATION, "randomization_factor": "number",
          "multiplier": "number", "max_interval": DURATION, "max_elapsed_time": DURATION}
_HTTP_SERVER = {"endpoint": STR, "include_metadata": BOOL, "max_request_body_size": INT,
                "traces_url_path": STR, "metrics_url_path": STR, "logs_url_path": STR}
_GRPC_SERVER = {"endpoint": STR, "transport": STR, "include_metadata": BOOL,
                "max_recv_msg_size_mib": INT, "max_concurrent_streams": INT}

COMPONENTS: dict[str, dict[str, Any]] = {
    "receivers": {"otlp": {"protocols": {"grpc": _GRPC_SERVER, "http": _HTTP_SERVER}}},
    "processors": {"cumulative_to_delta": {
        "include": {"metrics": [STR], "match_type": STR},
        "exclude": {"metrics": [STR], "match_type": STR},
        "max_staleness": DURATION, "initial_value": STR}},
    "exporters": {"otlp_http": {
        **_HTTP_CLIENT, "traces_endpoint": STR, "metrics_endpoint": STR, "logs_endpoint": STR,
        "profiles_endpoint": STR, "encoding": STR, "retry_on_failure": _RETRY,
        "sending_queue": _QUEUE_BATCH}},
}
DEPRECATED = {"exporters": {"otlphttp", "otlp"}, "processors": {"batch", "cumulativetodelta"}}
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")
_ENV_REFERENCE = re.compile(r"\$\{env:[A-Z_][A-Z0-9_]*\}")


def _check(value: Any, schema: Any, where: str) -> list[str]:
    problems: list[str] = []
    if isinstance(schema, dict):
        if value is None:
            return problems  # an empty section ("grpc:") is a valid "enabled with defaults"
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {value!r}"]
        for key, item in value.items():
            sub = schema.get(key, schema.get("*"))
            if sub is None:
                problems.append(f"{where}.{key}: not a documented setting")
            else:
                problems.extend(_check(item, sub, f"{where}.{key}"))
    elif isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        for index, item in enumerate(value):
            problems.extend(_check(item, schema[0], f"{where}[{index}]"))
    elif schema == DURATION:
        if not (isinstance(value, str) and _DURATION.match(value)):
            problems.append(f"{where}: {value!r} is not a duration")
    elif schema == STR:
        if not isinstance(value, str):
            problems.append(f"{where}: {value!r} is not a string")
        elif "${" in value and not _ENV_REFERENCE.search(value):
            problems.append(f"{where}: {value!r} is not a ${{env:NAME}} reference")
    elif schema == INT:
        if not (isinstance(value, int) and not isinstance(value, bool)):
            problems.append(f"{where}: {value!r} is not an integer")
    elif schema == BOOL:
        if not isinstance(value, bool):
            problems.append(f"{where}: {value!r} is not a boolean")
    elif schema == "number" and not isinstance(value, (int, float)):
        problems.append(f"{where}: {value!r} is not a number")
    return problems


def problems_in(config: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    defined: dict[str, set[str]] = {}
    for kind, schemas in COMPONENTS.items():
        defined[kind] = set()
        for component_id, settings in (config.get(kind) or {}).items():
            component_type = component_id.split("/", 1)[0]
            defined[kind].add(component_id)
            if component_type in DEPRECATED.get(kind, set()):
                problems.append(f"{kind}.{component_id}: deprecated component name")
                continue
            schema = schemas.get(component_type)
            if schema is None:
                problems.append(f"{kind}.{component_id}: not a documented component")
                continue
            problems.extend(_check(settings, schema, f"{kind}.{component_id}"))
    used: dict[str, set[str]] = {kind: set() for kind in COMPONENTS}
    pipelines = (config.get("service") or {}).get("pipelines") or {}
    if not pipelines:
        problems.append("service.pipelines: none")
    for name, pipeline in pipelines.items():
        if name.split("/", 1)[0] not in ("traces", "metrics", "logs"):
            problems.append(f"pipeline {name}: not a signal")
        for kind in COMPONENTS:
            for component_id in pipeline.get(kind, []):
                used[kind].add(component_id)
                if component_id not in defined[kind]:
                    problems.append(f"pipeline {name}: {kind} {component_id} is not defined")
        for kind in ("receivers", "exporters"):
            if not pipeline.get(kind):
                problems.append(f"pipeline {name}: no {kind}")
    for kind in COMPONENTS:
        for component_id in sorted(defined[kind] - used[kind]):
            problems.append(f"{kind}.{component_id}: defined but not used by any pipeline")
    return problems


def test_collector_example_follows_the_components_documented_schema() -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    assert problems_in(config) == []
    # batching is the exporters' own: every exporter has its sending queue batching
    for component_id, settings in config["exporters"].items():
        assert settings["sending_queue"]["enabled"] is True, component_id
        assert "batch" in settings["sending_queue"], component_id


@pytest.mark.parametrize("mutation,expected", [
    (lambda c: c["processors"].update(batch={}), "deprecated component name"),
    (lambda c: c["exporters"].update({"otlphttp/x": {"endpoint": "https://x"}}),
     "deprecated component name"),
    (lambda c: c["exporters"]["otlp_http/honeycomb"].update(endpont="https://x"),
     "not a documented setting"),
    (lambda c: c["exporters"]["otlp_http/honeycomb"]["sending_queue"]["batch"].update(
        flush_timeout="soon"), "not a duration"),
    (lambda c: c["service"]["pipelines"]["traces"]["exporters"].append("otlp_http/nope"),
     "is not defined"),
    (lambda c: c["exporters"]["otlp_http/honeycomb"]["headers"].update(
        k="${HONEYCOMB_API_KEY}"), "reference"),
])
def test_the_schema_check_catches_mistakes(mutation: Any, expected: str) -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    mutation(config)
    assert any(expected in p for p in problems_in(config))
