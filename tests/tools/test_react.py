"""The ReAct parser's one-pass tag scan against the lazy regexes it replaced (the naive
reference), plus hand-picked cases."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from resrl_agents.tools.react import MAX_ANSWER_CHARS, _blocks, parse_react

PIECES = ["<think>", "</think>", "<action>", "</action>", "<THINK>", "</Action>", "look", " ", "\n", "<", ">", "/"]


def reference_blocks(text: str) -> dict[str, list[str]]:
    """What the old parser read: ``re.findall`` of the lazy pattern per tag."""
    return {tag: re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL | re.IGNORECASE) for tag in ("think", "action")}


@settings(max_examples=3000, deadline=None, database=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_blocks_equal_the_lazy_regex(text: str) -> None:
    assert _blocks(text) == reference_blocks(text)


def test_hand_cases() -> None:
    ok = parse_react("<think>I see a desk.</think>\n<action> go  to\tdesk 1 </action>")
    assert (ok.thought, ok.action, ok.error) == ("I see a desk.", "go to desk 1", None)
    nested = parse_react("<action>a<action>b</action>c</action>")  # the first close ends the block
    assert nested.action == "a<action>b" and nested.error is None
    assert parse_react("<action>a</action><action>b</action>").error == "expected one <action> block, found 2"
    assert parse_react("<think>" * 3 + "<action>look</action>").action == "look"
    assert parse_react("<action>look</action>", require_think=True).error == "no <think>...</think> block found"


def test_over_long_answers_are_refused_unparsed() -> None:
    step = parse_react("<action>look</action>" + " " * MAX_ANSWER_CHARS)
    assert step.action is None and f"at most {MAX_ANSWER_CHARS}" in step.error
