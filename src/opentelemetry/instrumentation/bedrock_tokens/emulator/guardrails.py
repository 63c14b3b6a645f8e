"""Guardrails: the trace and intervention shapes the service adds when a request names one.

A request names a guardrail with Converse ``guardrailConfig`` (``guardrailIdentifier``,
``guardrailVersion``, ``trace``) or, for InvokeModel, the ``X-Amzn-Bedrock-GuardrailIdentifier``
/ ``-GuardrailVersion`` / ``X-Amzn-Bedrock-Trace`` headers botocore sends. The emulated
guardrail lets everything through, unless ``Scenario.guardrail == "intervene"``: then the input
is blocked and the answer is the guardrail's blocked-input message.

Shapes, as recorded: Converse puts ``trace.guardrail`` in the body (ConverseStream: in the
``metadata`` event) with ``inputAssessment`` / ``outputAssessments`` keyed by guardrail id and
``actionReason``, and stops with ``guardrail_intervened`` when it intervened. InvokeModel bodies
and stream chunks carry ``amazon-bedrock-guardrailAction`` (``INTERVENED`` / ``NONE``) and, with
the trace enabled, ``amazon-bedrock-trace.guardrail`` with ``input`` / ``outputs``. An
intervened Titan Text answer has float counts, and its stream is one chunk without invocation
metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

__all__ = [
    "BLOCKED_MESSAGE",
    "Guardrail",
    "converse_guardrail",
    "invoke_guardrail",
    "text_characters",
]

BLOCKED_MESSAGE = "Input blocked"

_POLICY_UNITS = (
    "topicPolicyUnits",
    "contentPolicyUnits",
    "wordPolicyUnits",
    "sensitiveInformationPolicyUnits",
    "sensitiveInformationPolicyFreeUnits",
    "contextualGroundingPolicyUnits",
)


@dataclass(frozen=True)
class Guardrail:
    identifier: str
    version: str
    trace: bool
    intervened: bool

    @property
    def action(self) -> str:
        return "INTERVENED" if self.intervened else "NONE"

    def _assessment(self, characters: int, blocked: bool) -> dict[str, Any]:
        usage = {name: 1 if "Free" not in name and "Grounding" not in name else 0
                 for name in _POLICY_UNITS}
        assessment: dict[str, Any] = {}
        if blocked:
            topic = {"name": "emulator-denied-topic", "type": "DENY", "action": "BLOCKED",
                     "detected": True}
            assessment["topicPolicy"] = {"topics": [topic]}
        assessment["invocationMetrics"] = {
            "guardrailProcessingLatency": 1,
            "usage": usage,
            "guardrailCoverage": {"textCharacters": {"guarded": characters, "total": characters}},
        }
        return assessment

    def _reason(self) -> str:
        return "Guardrail blocked." if self.intervened else "No action."

    def converse_trace(self, input_chars: int, output_chars: int) -> dict[str, Any]:
        """``trace`` of a Converse answer (or of the ConverseStream ``metadata`` event)."""
        guardrail: dict[str, Any] = {"actionReason": self._reason()}
        guardrail["inputAssessment"] = {
            self.identifier: self._assessment(input_chars, self.intervened)
        }
        if not self.intervened:
            guardrail["outputAssessments"] = {
                self.identifier: [self._assessment(output_chars, False)]
            }
        return {"guardrail": guardrail}

    def invoke_trace(self, input_chars: int, output_chars: int) -> dict[str, Any]:
        """``amazon-bedrock-trace`` of an InvokeModel body or last stream chunk."""
        guardrail: dict[str, Any] = {
            "input": {self.identifier: self._assessment(input_chars, self.intervened)}
        }
        if not self.intervened:
            guardrail["outputs"] = [{self.identifier: self._assessment(output_chars, False)}]
        guardrail["actionReason"] = self._reason()
        return {"guardrail": guardrail}


def converse_guardrail(request: Mapping[str, Any], intervene: bool) -> Optional[Guardrail]:
    config = request.get("guardrailConfig")
    if not isinstance(config, Mapping) or not config.get("guardrailIdentifier"):
        return None
    trace = str(config.get("trace", "disabled")).lower() in ("enabled", "enabled_full")
    return Guardrail(
        str(config["guardrailIdentifier"]), str(config.get("guardrailVersion", "DRAFT")),
        trace, intervene,
    )


def invoke_guardrail(headers: Mapping[str, str], intervene: bool) -> Optional[Guardrail]:
    identifier = headers.get("x-amzn-bedrock-guardrailidentifier")
    if not identifier:
        return None
    trace = headers.get("x-amzn-bedrock-trace", "DISABLED").upper() in ("ENABLED", "ENABLED_FULL")
    version = headers.get("x-amzn-bedrock-guardrailversion", "DRAFT")
    return Guardrail(identifier, version, trace, intervene)


def text_characters(value: Any) -> int:
    """Characters of the text a guardrail assesses (every string in ``value``)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        return sum(text_characters(v) for k, v in value.items() if k not in ("role", "type"))
    if isinstance(value, list):
        return sum(text_characters(v) for v in value)
    return 0
