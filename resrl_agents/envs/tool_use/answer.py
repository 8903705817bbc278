"""Final answers: read from ``<answer>…</answer>`` and compared with the gold.

Modes (``answer_match``):

* ``math``: numbers and expressions. Plain numbers compare exactly as decimals (``82 = 82.0``,
  ``1,200 = 1200``); otherwise a normalized exact match, then math-verify in the project's worker
  process (``envs/verify.py``: ``1/2 = 0.5 = \\frac{1}{2}``), so sympy never runs in the env.
* ``exact``: normalized strings are equal (case, surrounding whitespace/quotes, inner runs of
  whitespace and a final period do not matter).
* ``contains``: the normalized gold occurs in the normalized answer as a whole word/phrase.
* ``auto``: ``math`` when the gold is a number or LaTeX (``$…$``, ``\\frac``), else ``exact``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Literal

from resrl_agents.envs.verify import MathVerifier

Match = Literal["auto", "math", "exact", "contains"]
MATCH_MODES = ("auto", "math", "exact", "contains")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = re.compile(r"^[-+]?(\d+(,\d{3})*(\.\d*)?|\.\d+)$")


def extract_answer(text: str) -> str | None:
    """The content of the last ``<answer>…</answer>`` block (stripped), None when there is none."""
    found = _ANSWER.findall(text)
    return found[-1].strip() if found else None


def normalize(text: str) -> str:
    s = " ".join(text.split()).casefold()
    s = s.rstrip(".").strip()
    while len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'`":
        s = s[1:-1].strip()
    return s


def as_decimal(text: str) -> Decimal | None:
    s = text.strip()
    if not _NUMBER.match(s):
        return None
    try:
        return Decimal(s.replace(",", ""))
    except InvalidOperation:
        return None


def resolve_mode(mode: Match, gold: str) -> Match:
    if mode != "auto":
        return mode
    looks_math = as_decimal(gold) is not None or gold.strip().startswith("$") or "\\" in gold
    return "math" if looks_math else "exact"


class AnswerChecker:
    """Compares answers with gold in one mode; ``verifier`` scores the math fallback (its worker
    starts only when a non-trivial comparison needs it)."""

    def __init__(self, mode: Match, verifier: MathVerifier) -> None:
        if mode not in MATCH_MODES:
            raise ValueError(f"answer_match must be one of {MATCH_MODES}, got {mode!r}")
        self.mode, self.verifier = mode, verifier

    def check(self, gold: str, answer: str) -> tuple[bool, dict[str, bool]]:
        """(correct, details); details has ``timeout`` when the math verifier timed out."""
        mode = resolve_mode(self.mode, gold)
        g, a = normalize(gold), normalize(answer)
        if mode == "exact":
            return g == a, {}
        if mode == "contains":
            return bool(g) and re.search(rf"(?<!\w){re.escape(g)}(?!\w)", a) is not None, {}
        dg, da = as_decimal(gold), as_decimal(answer)
        if dg is not None and da is not None:
            return dg == da, {}
        if g == a:
            return True, {}
        won, verdict = self.verifier.score(gold, answer)
        return bool(won), {"timeout": bool(verdict["timeout"])}
