"""The one control-plane operation the emulator serves: ``GetInferenceProfile``.

``GET /inference-profiles/{inferenceProfileIdentifier}`` on the ``bedrock`` service (botocore's
bedrock model, ``GetInferenceProfileResponse``). The emulator knows the profiles it was told
about with ``BedrockEmulator.register_alias()`` (application inference profiles) and the
system-defined cross-region profiles whose ids name their model (``us.``, ``global.``, ...);
anything else is ``ResourceNotFoundException``, as the service answers.
"""

from __future__ import annotations

from typing import Any, Optional

from .modelids import parse_model_id

__all__ = ["PROFILE_PATH", "profile_body"]

PROFILE_PATH = "/inference-profiles/"
_REGION = "us-east-1"
_ACCOUNT = "123456789012"
# the Regions a geographic profile routes to, as GetInferenceProfile lists them
_GEO_REGIONS = {
    "us": ("us-east-1", "us-east-2", "us-west-2"),
    "eu": ("eu-central-1", "eu-west-1", "eu-west-3"),
    "apac": ("ap-northeast-1", "ap-southeast-1", "ap-southeast-2"),
    "global": ("us-east-1", "eu-west-1", "ap-northeast-1"),
}


def _model_arn(region: str, base_id: str) -> str:
    return f"arn:aws:bedrock:{region}::foundation-model/{base_id}"


def profile_body(identifier: str, alias: Optional[str]) -> Optional[dict[str, Any]]:
    """The response body for a known profile, else None (not found)."""
    ref = parse_model_id(identifier)
    if ref.kind == "application-inference-profile" and alias is not None:
        base = parse_model_id(alias)
        if base.base_id is None:
            return None
        regions = _GEO_REGIONS.get(base.geo or "", (_REGION,))
        profile_id = identifier.rsplit("/", 1)[-1]
        return {
            "inferenceProfileName": f"emulated-{profile_id}",
            "inferenceProfileArn": identifier,
            "inferenceProfileId": profile_id,
            "models": [{"modelArn": _model_arn(r, base.base_id)} for r in regions],
            "status": "ACTIVE",
            "type": "APPLICATION",
        }
    if ref.kind == "inference-profile" and ref.base_id is not None:
        profile_id = identifier.rsplit("/", 1)[-1]
        regions = _GEO_REGIONS.get(ref.geo or "", (_REGION,))
        return {
            "inferenceProfileName": f"{(ref.geo or '').upper()} {ref.base_id}",
            "inferenceProfileArn": (
                identifier if identifier.startswith("arn:")
                else f"arn:aws:bedrock:{_REGION}:{_ACCOUNT}:inference-profile/{profile_id}"
            ),
            "inferenceProfileId": profile_id,
            "models": [{"modelArn": _model_arn(r, ref.base_id)} for r in regions],
            "status": "ACTIVE",
            "type": "SYSTEM_DEFINED",
        }
    return None
