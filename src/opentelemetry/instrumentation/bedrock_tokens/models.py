"""Model-id parsing: what a ``modelId`` says about the model behind it.

The raw id always goes to ``gen_ai.request.model`` untouched; parsing only chooses which body
parser to use. Peers lose counts by recognising only some geo prefixes or by taking the text
before the first dot as the vendor; here any leading segment that is not a vendor is a geo
prefix, and ARNs are split by resource type. Opaque ids (application inference profiles,
provisioned models) have family ``unknown``: headers and ``invocationMetrics`` still give exact
counts for them, and the request body's shape may still identify the family (``families``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, Optional

UNKNOWN = "unknown"

# Ordered: the first prefix of the base id that matches decides the family.
_FAMILY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("anthropic.", "anthropic"),
    ("amazon.titan-embed", "titan_embed"),
    ("amazon.titan", "titan_text"),
    ("amazon.nova", "nova"),
    ("meta.llama", "llama"),
    ("cohere.command-r", "cohere_chat"),
    ("cohere.command", "cohere_text"),
    ("cohere.embed", "cohere_embed"),
    ("mistral.", "mistral"),
    ("ai21.jamba", "jamba"),
    ("deepseek.", "deepseek"),
    ("openai.", "openai"),
)

_VENDORS = frozenset(
    {
        "anthropic", "amazon", "meta", "cohere", "mistral", "ai21", "deepseek", "openai",
        "stability", "writer", "qwen", "twelvelabs", "luma", "moonshot", "minimax", "google",
        "nvidia",
    }
)

# ARN resource types whose suffix is (or contains) a model id that can be parsed further.
_ARN_PARSEABLE = {
    "foundation-model": "foundation_model",
    "inference-profile": "inference_profile",
}
_ARN_OPAQUE = {
    "application-inference-profile": "application_inference_profile",
    "provisioned-model": "provisioned_model",
    "custom-model-deployment": "custom_model_deployment",
    "imported-model": "imported_model",
    "prompt": "prompt",
    "prompt-router": "prompt_router",
    "default-prompt-router": "prompt_router",
    "endpoint": "sagemaker_endpoint",
}


class ModelInfo(NamedTuple):
    raw: str
    base_id: Optional[str]  # the bare foundation-model id, when derivable
    family: str  # key of families.FAMILIES, or "unknown"
    kind: str  # foundation_model | inference_profile | application_inference_profile | ...
    is_embedding: bool


def _strip_geo(model_id: str) -> tuple[str, bool]:
    parts = model_id.split(".")
    if len(parts) >= 3 and parts[0] not in _VENDORS:
        return ".".join(parts[1:]), True
    return model_id, False


def _family_of(base_id: str) -> str:
    lowered = base_id.lower()
    for prefix, family in _FAMILY_PREFIXES:
        if lowered.startswith(prefix):
            return family
    return UNKNOWN


def _info(raw: str, base: Optional[str], kind: str) -> ModelInfo:
    family = _family_of(base) if base else UNKNOWN
    is_embedding = family in ("titan_embed", "cohere_embed") or (
        base is not None and "embed" in base.lower()
    )
    return ModelInfo(raw, base, family, kind, is_embedding)


@lru_cache(maxsize=1024)
def parse_model_id(model_id: str) -> ModelInfo:
    """Parse once per distinct id (cached); never raises."""
    if model_id.startswith("arn:"):
        fields = model_id.split(":", 5)
        resource = fields[5] if len(fields) == 6 else ""
        rtype, _, rest = resource.partition("/")
        if rtype in _ARN_PARSEABLE and rest:
            base, is_profile = _strip_geo(rest)
            kind = _ARN_PARSEABLE[rtype]
            return _info(model_id, base, kind if not is_profile else "inference_profile")
        if rtype == "custom-model" and rest:
            # custom-model/<vendor>.<model>/<id>: the base model is inside
            return _info(model_id, rest.split("/", 1)[0], "custom_model")
        return _info(model_id, None, _ARN_OPAQUE.get(rtype, "other_arn"))
    base, is_profile = _strip_geo(model_id)
    return _info(model_id, base, "inference_profile" if is_profile else "foundation_model")
