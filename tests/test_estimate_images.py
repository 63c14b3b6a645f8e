"""Estimates for calls without counts, and image counts from image-model bodies."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from opentelemetry.instrumentation.bedrock_tokens import estimate, images
from opentelemetry.instrumentation.bedrock_tokens.config import load_settings


def _tokenizer_file(tmp_path: Path) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "how": 3, "are": 4, "you": 5}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    return str(path)


def test_text_of_request_and_response_bodies() -> None:
    converse = {"system": [{"text": "be brief"}],
                "messages": [{"role": "user", "content": [{"text": "hello"},
                                                          {"image": {"bytes": b"\x89PNG"}}]}]}
    assert estimate.text_of(converse) == "be brief\nhello"
    assert estimate.text_of({"prompt": "p", "max_gen_len": 5}) == "p"
    assert estimate.text_of({"textToImageParams": {"text": "a cat"},
                             "imageGenerationConfig": {"numberOfImages": 2}}) == "a cat"
    assert estimate.text_of({"images": ["aGVsbG8="]}) is None
    assert estimate.text_of({"outputText": "done"}) == "done"
    assert estimate.text_of(None) is None


def test_a_callable_estimator_is_run_and_its_figures_checked() -> None:
    seen: list[tuple[str, Optional[str], Optional[str]]] = []

    def estimator(model: str, prompt: Optional[str], reply: Optional[str]) -> Any:
        seen.append((model, prompt, reply))
        return (len((prompt or "").split()), 2.0)

    loaded = estimate.load_estimator(estimator, None)
    assert loaded is estimator
    got = estimate.run(loaded, "cohere.rerank-v3-5:0", {"query": "how are you"},
                       {"results": [{"index": 0}]})
    assert got == (3, 2)
    assert seen == [("cohere.rerank-v3-5:0", "how are you", None)]


@pytest.mark.parametrize("result", [None, "12", (1,), (1, 2, 3), (-1, 2.5), (None, None)])
def test_odd_estimator_results_give_no_estimate(result: Any) -> None:
    assert estimate.run(lambda *a: result, "m", {}, {}) is None


def test_a_failing_estimator_is_swallowed() -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    assert estimate.run(broken, "m", {"prompt": "x"}, None) is None


class _StandInTokenizer:
    """The part of ``tokenizers.Tokenizer`` the estimator uses (``from_file``, ``encode(text)
    .ids``), over a whitespace word list: the package is optional and not in the test extra."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab

    @classmethod
    def from_file(cls, path: str) -> _StandInTokenizer:
        import json

        with open(path) as handle:
            return cls(json.load(handle)["vocab"])

    def encode(self, text: str) -> Any:
        import types

        return types.SimpleNamespace(ids=[self.vocab.get(word, 0) for word in text.split()])


def test_tokenizer_file_estimator_loads_the_file_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import types

    module = types.ModuleType("tokenizers")
    module.Tokenizer = _StandInTokenizer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tokenizers", module)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"vocab": {"hello": 1, "world": 2}}))
    loaded = estimate.load_estimator(None, str(path))
    assert isinstance(loaded, estimate.TokenizerEstimator)
    got = estimate.run(loaded, "stability.sd3-large-v1:0", {"prompt": "hello world you"},
                       {"outputText": "how are you"})
    assert got == (3, 3)


def test_tokenizer_file_estimator_with_the_real_package(tmp_path: Path) -> None:
    # The optional 'tokenizer' extra is not in the test extra (it brings httpx2); .ci/floor
    # installs it and requires this test to run.
    if not os.environ.get("BEDROCK_TOKENS_REQUIRE_TOKENIZERS"):
        pytest.importorskip("tokenizers", reason="the tokenizer extra; run by .ci/floor")
    loaded = estimate.load_estimator(None, _tokenizer_file(tmp_path))
    assert isinstance(loaded, estimate.TokenizerEstimator)
    got = estimate.run(loaded, "stability.sd3-large-v1:0", {"prompt": "hello world you"},
                       {"outputText": "how are you"})
    assert got == (3, 3)


def test_bad_estimator_options_are_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with caplog.at_level(logging.WARNING):
        assert load_settings({"estimator": "not callable"}, {}).estimator is None
        assert estimate.load_estimator(None, str(tmp_path / "missing.json")) is None
        monkeypatch.setitem(sys.modules, "tokenizers", None)  # not installed
        assert estimate.load_estimator(None, str(tmp_path / "t.json")) is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "not installed" in messages[2]
    assert estimate.load_estimator(None, None) is None
    assert estimate.load_estimator(None, "") is None


@pytest.mark.parametrize("body, count", [
    ({"images": ["aaa", "bbb"], "error": None}, 2),  # Titan Image / Nova Canvas
    ({"images": ["aaa"], "error": "Some of the generated images have been blocked"}, 1),
    ({"images": [], "error": "All of the generated images have been blocked"}, 0),
    ({"seeds": [1], "finish_reasons": [None], "images": ["aaa"]}, 1),  # Stability SD3
    ({"result": "success", "artifacts": [{"seed": 1, "base64": "aaa",
                                          "finishReason": "SUCCESS"},
                                         {"seed": 2, "base64": "bbb",
                                          "finishReason": "CONTENT_FILTERED"}]}, 2),  # SDXL
])
def test_output_images(body: Any, count: int) -> None:
    assert images.output_images(body) == count


@pytest.mark.parametrize("body", [
    None, [], {"completion": "text"}, {"images": ["a", 3]}, {"artifacts": ["a"]},
    {"images": "aaa"},
])
def test_no_image_count_without_an_image_body(body: Any) -> None:
    assert images.output_images(body) is None
