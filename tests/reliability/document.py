"""RELIABILITY.md's generated blocks: the matrix (from ``matrix.CASES``; checked by
test_document.py on every run) and the figures (written by a run with
``BEDROCK_TOKENS_WRITE_RELIABILITY=1``; a partial run updates only the figures it measured)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Optional

PATH = Path(__file__).resolve().parents[2] / "RELIABILITY.md"
MATRIX = ("<!-- matrix:begin (generated from tests/reliability/matrix.py) -->",
          "<!-- matrix:end -->")
FIGURES = ("<!-- figures:begin (written by BEDROCK_TOKENS_WRITE_RELIABILITY=1) -->",
           "<!-- figures:end -->")
_LINE = re.compile(r"^- \*\*(?P<key>[^*]+)\*\*: (?P<value>.*)$")


def block(text: str, markers: tuple[str, str]) -> Optional[str]:
    begin, end = markers
    start = text.find(begin)
    stop = text.find(end)
    if start < 0 or stop < start:
        return None
    return text[start + len(begin):stop].strip("\n")


def _replace(text: str, markers: tuple[str, str], content: str) -> str:
    begin, end = markers
    start = text.index(begin) + len(begin)
    return text[:start] + "\n" + content + "\n" + text[text.index(end):]


def write_document(figures: dict[str, str], results: dict[str, dict[str, int]]) -> None:
    from importlib.metadata import version

    from .matrix import matrix_table

    text = PATH.read_text()
    text = _replace(text, MATRIX, matrix_table())
    known: dict[str, str] = {}
    for line in (block(text, FIGURES) or "").splitlines():
        found = _LINE.match(line)
        if found:
            known[found["key"]] = found["value"]
    if results:
        tried = sum(r.get("tried", 0) for r in results.values())
        passed = sum(r.get("passed", 0) for r in results.values())
        known["fault matrix"] = f"{tried} runs tried, {passed} passed"
    known.update(figures)
    known["measured with"] = (
        f"Python {platform.python_version()}, botocore {version('botocore')}, "
        f"opentelemetry-sdk {version('opentelemetry-sdk')}, {os.cpu_count()} cores shared with "
        "other jobs")
    PATH.write_text(_replace(text, FIGURES, "\n".join(
        f"- **{key}**: {value}" for key, value in sorted(known.items()))))
