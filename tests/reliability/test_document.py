"""RELIABILITY.md tells the truth about the suite: its matrix block is the current matrix, and
it documents the figures block and the soak mode."""

from __future__ import annotations

from .document import FIGURES, MATRIX, PATH, block
from .matrix import CASES, matrix_table, runs


def test_reliability_md_matrix_is_the_current_matrix() -> None:
    text = PATH.read_text()
    assert block(text, MATRIX) == matrix_table(), (
        "RELIABILITY.md's matrix is stale: run the suite with "
        "BEDROCK_TOKENS_WRITE_RELIABILITY=1 to regenerate it")
    total = matrix_table().splitlines()[-1]
    assert f"**{len(CASES)}**" in total and f"**{len(runs())}**" in total


def test_reliability_md_has_figures_and_documents_soak() -> None:
    text = PATH.read_text()
    figures = block(text, FIGURES)
    assert figures is not None and figures.count("\n- **") >= 5
    for key in ("concurrency", "leaks", "interpreter shutdown", "instrument/uninstrument",
                "fault matrix"):
        assert f"- **{key}" in figures, key
    assert "BEDROCK_TOKENS_SOAK=1" in text
    assert "BEDROCK_TOKENS_WRITE_RELIABILITY=1" in text
