"""OpenTelemetry instrumentation for Amazon Bedrock Runtime with exact token counts.

Zero code: ``opentelemetry-instrument python app.py`` loads it through the
``opentelemetry_instrumentor`` entry point ``bedrock_tokens``. Manual::

    from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor

    BedrockTokensInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)

Options to ``instrument()`` mirror the ``OTEL_INSTRUMENTATION_BEDROCK_TOKENS_*`` environment
variables (see ``config``). How a call flows through the code: ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import Any, Collection

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from .package import _instruments
from .version import __version__

# botocore, wrapt and the implementation modules are imported by _instrument(), not here:
# the package's pytest plugin (and `bedrock-tokens emulator`) import this package too, and
# must not pay for, or be affected by, the instrumentation itself.

__all__ = ["BedrockTokensInstrumentor", "__version__"]


def _ours_in_chain() -> bool:
    from botocore.client import BaseClient

    from . import patch

    attr = BaseClient.__dict__.get("_make_api_call")
    while attr is not None:
        if getattr(attr, "_self_wrapper", None) is patch.make_api_call_wrapper:
            return True
        attr = getattr(attr, "__wrapped__", None)
    return False


def _should_step_aside(operation: str) -> bool:
    from . import patch

    handler = patch.active
    return handler is not None and handler.settings.replace_contrib and (
        operation in patch.OPERATIONS
    )


class BedrockTokensInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces bedrock-runtime calls made through botocore, with exact token counts."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        import wrapt
        from botocore.client import BaseClient

        from . import coexist, patch, streams
        from .config import load_settings
        from .telemetry import Telemetry

        settings = load_settings(kwargs)
        telemetry = Telemetry(
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
            settings.schema,  # the convention in force, chosen once
            kwargs.get("logger_provider"),
            events=settings.content_events,
            chunk_timing=settings.chunk_timing,
        )
        precounter = None
        if settings.precount != "off":
            from .precount import make_precounter

            precounter = make_precounter(settings, telemetry)
        patch.active = patch.Handler(
            settings,
            telemetry,
            precounter,
            on_first_call=lambda: coexist.warn_conflicts_once(settings.replace_contrib),
        )
        if not _ours_in_chain():
            wrapt.wrap_function_wrapper(BaseClient, "_make_api_call", patch.make_api_call_wrapper)
        if settings.replace_contrib:
            coexist.step_aside_contrib(_should_step_aside)
        coexist.warn_conflicts_once(settings.replace_contrib)
        streams.register_exit_handler()

    def _uninstrument(self, **kwargs: Any) -> None:
        from botocore.client import BaseClient

        from . import coexist, patch

        handler = patch.active
        patch.active = None  # from here on the wrapper is a pass-through wherever it sits
        if handler is not None and handler.precounter is not None:
            shutdown = getattr(handler.precounter, "shutdown", None)
            if callable(shutdown):
                shutdown()
        coexist.restore_contrib()
        current = BaseClient.__dict__.get("_make_api_call")
        if getattr(current, "_self_wrapper", None) is patch.make_api_call_wrapper:
            BaseClient._make_api_call = current.__wrapped__
        # else another package wrapped on top of us: leave its wrapper (and our now inert one)
