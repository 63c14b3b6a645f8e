"""Coexistence with other Bedrock instrumentations. Nothing else in the package knows they exist.

The contrib ``opentelemetry-instrumentation-botocore`` is installed next to us in most
zero-code deployments (``opentelemetry-bootstrap`` adds it for every boto3 app) and emits its
own GenAI span and metrics for Bedrock calls: two spans and doubled token sums per call.
Its extension registry is a module-level dict that it reads on every call, so we put a loader
there whose extension answers ``should_trace_service_call() == False`` for the operations we
trace, while we are active. Contrib then calls straight through with no span, whatever the
order the two were instrumented in; every other service, and every other Bedrock operation,
keeps contrib's spans. ``restore_contrib`` puts the original loader back, and because the check
is made per call, contrib resumes even if something else replaced the dict entry meanwhile.

Instrumentations we cannot step around (they patch client instances or emit through their own
handlers) are detected and reported once, with how to disable one of the two.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Optional

_logger = logging.getLogger(__name__)

_REGISTRY_NAMES = ("_BOTOCORE_EXTENSIONS", "_KNOWN_EXTENSIONS")  # >= 0.62b0, older
_AIO_REGISTRY_NAMES = ("_AIOBOTOCORE_EXTENSIONS",)
_KEY = "bedrock-runtime"
_MARK = "_bedrock_tokens_original"

# (module, class, distribution, its entry-point name)
FOREIGN = (
    ("opentelemetry.instrumentation.genai.bedrock", "BedrockInstrumentor",
     "opentelemetry-instrumentation-genai-bedrock", "bedrock"),
    ("opentelemetry.instrumentation.bedrock", "BedrockInstrumentor",
     "opentelemetry-instrumentation-bedrock (OpenLLMetry)", "boto3"),
    ("openinference.instrumentation.bedrock", "BedrockInstrumentor",
     "openinference-instrumentation-bedrock", "bedrock"),
)
CONTRIB = ("opentelemetry.instrumentation.botocore", "BotocoreInstrumentor",
           "opentelemetry-instrumentation-botocore", "botocore")

_subclasses: dict[type, type] = {}
_warned: set[str] = set()


def _registries() -> list[dict[str, Any]]:
    """Contrib's extension registries: botocore's, and aiobotocore's (its
    ``AiobotocoreInstrumentor`` reads its own, which has no Bedrock entry: it would trace
    our operations with its generic span)."""
    try:
        from opentelemetry.instrumentation.botocore import extensions
    except Exception:  # not installed, or broken: nothing to coexist with
        return []
    found: list[dict[str, Any]] = []
    for names in (_REGISTRY_NAMES, _AIO_REGISTRY_NAMES):
        for name in names:
            registry = getattr(extensions, name, None)
            if isinstance(registry, dict):
                found.append(registry)
                break
    return found


def _registry() -> Optional[dict[str, Any]]:
    """Contrib's botocore registry (the one every contrib version has)."""
    try:
        from opentelemetry.instrumentation.botocore import extensions
    except Exception:
        return None
    for name in _REGISTRY_NAMES:
        found = getattr(extensions, name, None)
        if isinstance(found, dict):
            return found
    return None


def _stepping_aside(base: type, should_step_aside: Callable[[str], bool]) -> type:
    cls = _subclasses.get(base)
    if cls is None:

        class _SteppingAside(base):  # type: ignore[misc]
            def should_trace_service_call(self) -> bool:
                if should_step_aside(self._call_context.operation):
                    return False
                return bool(super().should_trace_service_call())

        cls = _subclasses[base] = _SteppingAside
    return cls


def step_aside_contrib(should_step_aside: Callable[[str], bool]) -> bool:
    """Install the stepping-aside loader; True if contrib's registry was found."""
    registries = _registries()
    for registry in registries:
        _step_aside_in(registry, should_step_aside)
    return bool(registries)


def _step_aside_in(registry: dict[str, Any], should_step_aside: Callable[[str], bool]) -> None:
    current = registry.get(_KEY)
    if current is not None and hasattr(current, _MARK):
        return  # already ours
    original = current

    def loader() -> type:
        if original is not None:
            base = original()
        else:
            from opentelemetry.instrumentation.botocore.extensions.types import _AwsSdkExtension

            base = _AwsSdkExtension
        return _stepping_aside(base, should_step_aside)

    setattr(loader, _MARK, original)
    registry[_KEY] = loader


def restore_contrib() -> None:
    for registry in _registries():
        current = registry.get(_KEY)
        if current is not None and hasattr(current, _MARK):
            original = getattr(current, _MARK)
            if original is None:
                registry.pop(_KEY, None)
            else:
                registry[_KEY] = original


def _instrumented(module: str, cls_name: str) -> bool:
    """Whether an instrumentor is active, without importing or instantiating anything."""
    mod = sys.modules.get(module)
    cls = getattr(mod, cls_name, None) if mod is not None else None
    instance = getattr(cls, "_instance", None) if cls is not None else None
    return bool(getattr(instance, "_is_instrumented_by_opentelemetry", False))


def active_conflicts(replace_contrib: bool) -> list[tuple[str, str]]:
    """(distribution, entry-point name) of each active instrumentation that would trace the
    same Bedrock calls again."""
    found = [(dist, ep) for module, cls, dist, ep in FOREIGN if _instrumented(module, cls)]
    if not replace_contrib and _instrumented(CONTRIB[0], CONTRIB[1]):
        found.append((CONTRIB[2], CONTRIB[3]))
    return found


def warn_conflicts_once(replace_contrib: bool) -> None:
    for dist, entry_point in active_conflicts(replace_contrib):
        if dist in _warned:
            continue
        _warned.add(dist)
        _logger.warning(
            "%s is also instrumenting Amazon Bedrock Runtime: every Bedrock call will get a "
            "second span and its tokens will be counted twice. Disable one of the two, e.g. "
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=%s (theirs) or =bedrock_tokens (ours).",
            dist, entry_point,
        )
