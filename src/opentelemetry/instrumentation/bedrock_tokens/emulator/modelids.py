"""Model-id forms Bedrock accepts, reduced to what the emulator needs: a base model id or none.

Bare ids and cross-region profile ids name their model; ARNs of foundation models and system
inference profiles contain one. Application inference profiles, provisioned models and the
other opaque ARNs do not: for those the emulator relies on a registered alias or on the request
body shape (see :mod:`.families`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

__all__ = ["GEO_PREFIXES", "ModelRef", "parse_model_id"]

GEO_PREFIXES = frozenset({"us", "eu", "apac", "us-gov", "global", "jp", "au", "ca"})

_ARN = re.compile(
    r"^arn:aws(?:-[a-z-]+)?:(?P<service>bedrock|sagemaker):(?P<region>[^:]*):(?P<account>[^:]*):"
    r"(?P<resource>[a-z-]+)/(?P<rest>.+)$"
)


@dataclass(frozen=True)
class ModelRef:
    """What an incoming model id says about the model.

    ``kind`` is one of ``foundation-model``, ``inference-profile`` (system, cross-region),
    ``application-inference-profile``, ``provisioned-model``, ``custom-model``, or another ARN
    resource type; ``base_id`` is the bare foundation-model id when it can be derived.
    """

    raw: str
    kind: str
    base_id: Optional[str]
    geo: Optional[str] = None

    @property
    def is_cross_region_profile(self) -> bool:
        """True for ``us.``/``eu.``/... ids and for system inference-profile ARNs."""
        return self.kind == "inference-profile"


def _strip_geo(model_id: str) -> tuple[Optional[str], str]:
    head, sep, rest = model_id.partition(".")
    if sep and head in GEO_PREFIXES and "." in rest:
        return head, rest
    return None, model_id


def parse_model_id(model_id: str) -> ModelRef:
    """Classify a decoded model id; never raises."""
    match = _ARN.match(model_id)
    if match is None:
        geo, base = _strip_geo(model_id)
        kind = "inference-profile" if geo else "foundation-model"
        return ModelRef(model_id, kind, base, geo)
    resource, rest = match.group("resource"), match.group("rest")
    if match.group("service") == "sagemaker":
        # A SageMaker endpoint serving an imported model: no foundation model behind it.
        return ModelRef(model_id, "sagemaker-" + resource, "imported-model")
    if resource == "imported-model":
        return ModelRef(model_id, resource, "imported-model")
    if resource == "foundation-model":
        return ModelRef(model_id, resource, rest)
    if resource == "inference-profile":
        geo, base = _strip_geo(rest)
        return ModelRef(model_id, resource, base, geo)
    if resource == "custom-model" and "/" in rest:
        return ModelRef(model_id, resource, rest.split("/", 1)[0])
    return ModelRef(model_id, resource, None)
