"""Output images of image-generation responses, which carry no token counts.

CloudWatch counts them (``OutputImageCount``); per call, the InvokeModel body says how many
came back. Body shapes (AWS model-parameter documentation):

* Amazon Titan Image Generator and Amazon Nova Canvas: ``{"images": ["<base64>", ...],
  "error": ...}`` (a partly filtered request returns fewer images and an ``error`` string);
* Stability AI SD3 / Stable Image Ultra / Core: ``{"images": [...], "seeds": [...],
  "finish_reasons": [...]}``;
* Stability AI SDXL 1.0: ``{"result": "success", "artifacts": [{"base64": ..., "seed": ...,
  "finishReason": ...}, ...]}``.

An image is counted when the body holds its data; a list with a bad element gives no count
(exact or absent, as for tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional


def output_images(body: Any) -> Optional[int]:
    if not isinstance(body, Mapping):
        return None
    images = body.get("images")
    if isinstance(images, list):
        if all(isinstance(item, str) for item in images):
            return sum(1 for item in images if item)
        return None
    artifacts = body.get("artifacts")
    if isinstance(artifacts, list):
        count = 0
        for item in artifacts:
            if not isinstance(item, Mapping):
                return None
            data = item.get("base64")
            if isinstance(data, str) and data:
                count += 1
        return count
    return None

