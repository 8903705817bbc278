"""Parser of the ReAct answer format ``<think>…</think><action>…</action>``.

One parser for training, eval and serving. Never raises: a malformed answer is returned with
``error`` set, and the env turns it into an observation.

The tags are found in one left-to-right scan (linear time on any text): a lazy regex such as
``<think>(.*?)</think>`` restarts at every unclosed opening tag, which is quadratic on an answer of
repeated ``<think>`` tags (10,000 of them took 4.6 s). Answers longer than ``MAX_ANSWER_CHARS`` are
rejected without being parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ANSWER_CHARS = 65_536  # far beyond any real turn (thousands of tokens); a cap on env work
_TAG = re.compile(r"<(/?)(think|action)>", re.IGNORECASE)


@dataclass(frozen=True)
class ReactStep:
    thought: str | None
    action: str | None
    error: str | None  # None when the answer was well-formed


def _blocks(text: str) -> dict[str, list[str]]:
    """Contents of the closed ``<think>`` / ``<action>`` blocks, in order.

    Same result as ``re.findall(r"<tag>(.*?)</tag>", text, re.S | re.I)`` per tag: a block opens
    at the first opening tag and closes at the next closing tag of its kind (opening tags between
    the two are content); the scan then goes on after the closing tag.
    """
    found: dict[str, list[str]] = {"think": [], "action": []}
    start: dict[str, int | None] = {"think": None, "action": None}
    for m in _TAG.finditer(text):
        name, closing = m.group(2).lower(), bool(m.group(1))
        if not closing and start[name] is None:
            start[name] = m.end()
        elif closing and start[name] is not None:
            found[name].append(text[start[name]:m.start()])
            start[name] = None
    return found


def parse_react(text: str, *, require_think: bool = False) -> ReactStep:
    """Extract the thought and the single action of one answer.

    Exactly one ``<action>`` block is required; its content is stripped and lower-cased
    whitespace is collapsed. ``require_think`` makes a missing ``<think>`` block an error. The
    thought is the first ``<think>`` block.
    """
    if len(text) > MAX_ANSWER_CHARS:
        return ReactStep(None, None, f"the answer is {len(text)} characters long; at most {MAX_ANSWER_CHARS} are read")
    blocks = _blocks(text)
    thought = blocks["think"][0].strip() if blocks["think"] else None
    actions = blocks["action"]
    if not actions:
        return ReactStep(thought, None, "no <action>...</action> block found")
    if len(actions) > 1:
        return ReactStep(thought, None, f"expected one <action> block, found {len(actions)}")
    action = " ".join(actions[0].split())
    if not action:
        return ReactStep(thought, None, "the <action> block is empty")
    if require_think and thought is None:
        return ReactStep(None, action, "no <think>...</think> block found")
    return ReactStep(thought, action, None)
