"""Pure helpers of the upstream client and the token estimate: chunks, faults, estimates, trimming."""

import pytest

from core.llm import MalformedChunk, cached_tokens_of, read_chunk, translate_fault
from core.tokens import estimate_messages_tokens, estimate_text_tokens, fit_history, trim_history


def test_token_estimate_is_never_zero_for_text_and_grows_with_it():
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("hi") == 1
    short = estimate_text_tokens("The quick brown fox jumps over the lazy dog.")
    assert 9 <= short <= 14  # about what a BPE tokenizer gives (10)
    assert estimate_text_tokens("word " * 1000) >= 1000
    assert estimate_text_tokens("数据库连接池") == 6


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("abcdef", 2),  # six letters: one piece, but chars/4 rounds up to 2
        ("abcdefg abcdefg", 4),  # seven letters: two pieces each
        ("internationalization", 5),  # 20 letters: ceil(20/6) = 4 pieces < chars/4 = 5
        ("internationalization " * 3, 16),  # 12 pieces < 63 chars / 4
        ("a1234567 b", 5),  # a, 123, 456, 7, b: digits in threes
        ("数据库 and テスト, 가나!", 11),  # each CJK/kana/hangul character and mark is a piece
        ("x = f(y) + 2;", 9),
    ],
)
def test_token_estimate_counts_word_pieces_exactly(text, pieces):
    assert estimate_text_tokens(text) == pieces


def test_messages_estimate_counts_per_message_overhead():
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": ""}]
    assert estimate_messages_tokens(messages) == estimate_text_tokens("hello") + 8


def test_trim_history_drops_the_oldest_first_and_keeps_the_newest():
    history = [{"role": "user", "content": f"message {i} " + "x" * 400} for i in range(10)]
    kept = trim_history(history, budget=300)
    assert kept == history[-len(kept) :]
    assert 1 <= len(kept) < 10
    assert trim_history(history[:1], budget=1) == history[:1]
    fitted, used = fit_history(history, budget=300)
    assert fitted == kept
    assert used == estimate_messages_tokens(kept) <= 300


def test_read_chunk_takes_choice_zero_finish_reason_and_usage():
    chunk = read_chunk(
        {
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": "Hel"}},
                {"index": 1, "delta": {"content": "other choice"}, "finish_reason": "stop"},
            ],
        }
    )
    assert (chunk.content, chunk.finish_reason, chunk.usage) == ("Hel", None, None)
    end = read_chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    assert (end.content, end.finish_reason) == ("", "stop")
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": None}
    last = read_chunk({"choices": [], "usage": usage})
    assert last.usage == usage and cached_tokens_of(last.usage) == 0
    assert cached_tokens_of({**usage, "prompt_tokens_details": {"cached_tokens": 8}}) == 8
    assert cached_tokens_of({**usage, "prompt_cache_hit_tokens": 5}) == 5  # DeepSeek
    # Usage with nulls or missing counts is unknown (estimated later), not a malformed chunk.
    for odd in (
        {"prompt_tokens": 12, "completion_tokens": None},
        {"prompt_tokens": "12", "completion_tokens": 3},
        {"prompt_tokens": 12},
    ):
        assert read_chunk({"choices": [], "usage": odd}).usage is None
    assert cached_tokens_of({**usage, "prompt_tokens_details": {"cached_tokens": None}}) == 0
    # Servers that send "usage": null, "content": null or no delta at all.
    assert read_chunk({"choices": [{"index": 0, "delta": {"content": None}}], "usage": None})
    assert read_chunk({"choices": [{"index": 0}]}).content == ""


@pytest.mark.parametrize(
    "data",
    [
        [],
        "text",
        {"choices": {"index": 0}},
        {"choices": ["x"]},
        {"choices": [{"index": 0, "delta": "text"}]},
        {"choices": [{"index": 0, "delta": {"content": 7}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": 1}]},
        {"choices": [], "usage": "many"},
    ],
)
def test_a_chunk_of_the_wrong_shape_is_an_upstream_malformed_fault(data):
    with pytest.raises(MalformedChunk) as caught:
        read_chunk(data)
    fault = translate_fault(caught.value, text_started=True)
    assert (fault.code, fault.retryable) == ("upstream_malformed", True)
