"""A local, stdlib-only Bedrock Runtime emulator for tests, demos and benchmarks.

It serves InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream and CountTokens
over real HTTP and AWS event-stream framing, so botocore parses it exactly as it parses the
real service, with deterministic token counts and scenario-driven faults. The instrumentation
never imports this package. See ``docs/emulator.md``.
"""

from __future__ import annotations

from .counting import input_tokens_for, output_text_for, output_tokens_for
from .guardrails import BLOCKED_MESSAGE
from .modelids import ModelRef, parse_model_id
from .recording import RecordedRequest
from .reply import DEFAULT_REPLY, REASONING_TEXT
from .scenarios import SCENARIO_HEADER, STREAM_EXCEPTIONS, Scenario
from .server import BedrockEmulator
from .tokenizer import count_text_tokens

__all__ = [
    "BLOCKED_MESSAGE",
    "DEFAULT_REPLY",
    "REASONING_TEXT",
    "SCENARIO_HEADER",
    "STREAM_EXCEPTIONS",
    "BedrockEmulator",
    "ModelRef",
    "RecordedRequest",
    "Scenario",
    "count_text_tokens",
    "input_tokens_for",
    "output_text_for",
    "output_tokens_for",
    "parse_model_id",
]
