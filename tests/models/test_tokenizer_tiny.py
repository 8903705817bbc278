"""The tiny model's byte-level BPE tokenizer: digits, atomic tokens, lossless round trips."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from resrl_agents.models.tiny import ADDED_TOKENS, SPECIAL_TOKENS


def test_digits_are_split_one_per_token(tiny_tok):
    assert tiny_tok.tokenize("12345") == ["1", "2", "3", "4", "5"]
    ids = tiny_tok("x = 9087 + 12", add_special_tokens=False).input_ids
    digit_tokens = [t for t in tiny_tok.convert_ids_to_tokens(ids) if any(c.isdigit() for c in t)]
    assert digit_tokens == ["9", "0", "8", "7", "1", "2"]


def test_special_and_added_tokens_are_single_ids(tiny_tok):
    # fixed ids: <|endoftext|>=0, <|im_start|>=1, <|im_end|>=2
    for i, tok in enumerate(SPECIAL_TOKENS):
        assert tiny_tok(tok, add_special_tokens=False).input_ids == [i]
    for tok in ADDED_TOKENS:
        ids = tiny_tok(f"a{tok}b", add_special_tokens=False).input_ids
        assert len(ids) == 3 and tiny_tok.convert_ids_to_tokens(ids[1]) == tok
    text = "<|im_start|>user\nhi<|im_end|><|endoftext|>"
    ids = tiny_tok(text, add_special_tokens=False).input_ids
    assert tiny_tok.decode(ids, skip_special_tokens=True) == "user\nhi"


def test_skip_special_keeps_react_and_tool_tags(tiny_tok):
    text = "<think>go</think><action>look</action><tool_call>{}</tool_call><|im_end|>"
    ids = tiny_tok(text, add_special_tokens=False).input_ids
    assert tiny_tok.decode(ids, skip_special_tokens=True) == text.removesuffix("<|im_end|>")


def test_no_bos_or_eos_added_automatically(tiny_tok):
    text = "go to countertop 1"
    assert tiny_tok(text).input_ids == tiny_tok(text, add_special_tokens=False).input_ids


def test_round_trip_examples(tiny_tok):
    for text in ["", " ", "  two  spaces\n\n\ttab", "héllo wörld — naïve café",
                 "日本語のテキスト 🤖🚀", 'search[red shoes] {"name": "f", "arguments": {"x": 1.5e-3}}',
                 "a\u0000b\r\n", "<|im_start|>user\nhi<|im_end|>\n",
                 "<think> </think> <action>go to desk 1</action>"]:
        ids = tiny_tok(text, add_special_tokens=False).input_ids
        assert tiny_tok.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_round_trip_arbitrary_text(tiny_tok, text):
    ids = tiny_tok(text, add_special_tokens=False).input_ids
    assert tiny_tok.decode(ids) == text


def test_chain_answers_are_20_to_60_tokens(tiny_tok):
    """The learning study's task: worked answers long enough to diverge mid-response."""
    from resrl_agents.envs.math_tasks import ChainTasks

    for difficulty in (1, 2, 3):
        src = ChainTasks(difficulty, size=200)
        lengths = [len(tiny_tok(f"{t.solution}\n#### {t.answer}").input_ids) + 1 for t in map(src.get, range(len(src)))]  # + <|im_end|>
        assert 20 <= min(lengths) and max(lengths) <= 60, (difficulty, min(lengths), max(lengths))
