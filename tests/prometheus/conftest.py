"""The real-Prometheus suite needs Debian's ``prometheus`` package (installed by the test when
missing, as root), so it runs from ``.ci/prometheus``, not in the default pytest run: it is
collected only when ``BEDROCK_TOKENS_PROMETHEUS=1``."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("BEDROCK_TOKENS_PROMETHEUS") == "1" else ["test_*.py"]
