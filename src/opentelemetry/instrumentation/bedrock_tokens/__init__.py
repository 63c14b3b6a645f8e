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


def _ours_in_chain(cls: Any, wrapper: Any) -> bool:
    attr = cls.__dict__.get("_make_api_call")
    while attr is not None:
        if getattr(attr, "_self_wrapper", None) is wrapper:
            return True
        attr = getattr(attr, "__wrapped__", None)
    return False


def _wrap(cls: Any, wrapper: Any) -> None:
    import wrapt

    if not _ours_in_chain(cls, wrapper):
        wrapt.wrap_function_wrapper(cls, "_make_api_call", wrapper)


def _unwrap(cls: Any, wrapper: Any) -> None:
    current = cls.__dict__.get("_make_api_call")
    if getattr(current, "_self_wrapper", None) is wrapper:
        cls._make_api_call = current.__wrapped__
    # else another package wrapped on top of us: leave its wrapper (and our now inert one)


def _wrap_aiobotocore(module: Any = None) -> None:
    """Now, or when aiobotocore is first imported: the launcher instruments before the app
    imports it. aiobotocore stays optional; without it nothing happens."""
    from . import aio, patch

    if patch.active is None:
        return  # imported after uninstrument(): nothing to do
    try:
        from aiobotocore.client import AioBaseClient
    except Exception:
        return
    _wrap(AioBaseClient, aio.make_api_call_wrapper)


_import_hook: list[bool] = []


def _instrument_aiobotocore() -> None:
    import sys

    if "aiobotocore.client" in sys.modules:
        _wrap_aiobotocore()
    elif not _import_hook:  # once per process; the hook itself checks we are still active
        import wrapt

        wrapt.register_post_import_hook(_wrap_aiobotocore, "aiobotocore.client")
        _import_hook.append(True)


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
        from botocore.client import BaseClient

        from . import coexist, patch, streams
        from .config import load_settings
        from .extras import Extras
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
        extras = Extras(settings)  # prices, attribution, profiles, estimates: loaded once
        precounter = None
        if settings.precount != "off":
            from .precount import make_precounter

            precounter = make_precounter(settings, telemetry, extras)
        patch.active = patch.Handler(
            settings,
            telemetry,
            precounter,
            on_first_call=lambda: coexist.warn_conflicts_once(settings.replace_contrib),
            extras=extras,
        )
        _wrap(BaseClient, patch.make_api_call_wrapper)
        _instrument_aiobotocore()
        if settings.replace_contrib:
            coexist.step_aside_contrib(_should_step_aside)
        coexist.warn_conflicts_once(settings.replace_contrib)
        streams.register_exit_handler()

    def _uninstrument(self, **kwargs: Any) -> None:
        import sys

        from botocore.client import BaseClient

        from . import coexist, patch

        handler = patch.active
        patch.active = None  # from here on the wrapper is a pass-through wherever it sits
        if handler is not None and handler.precounter is not None:
            shutdown = getattr(handler.precounter, "shutdown", None)
            if callable(shutdown):
                shutdown()
        coexist.restore_contrib()
        _unwrap(BaseClient, patch.make_api_call_wrapper)
        aio_client = sys.modules.get("aiobotocore.client")
        if aio_client is not None:
            from . import aio

            _unwrap(aio_client.AioBaseClient, aio.make_api_call_wrapper)
