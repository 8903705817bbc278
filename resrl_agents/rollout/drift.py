"""Token-drift check for the ``full`` history layout.

Training uses the exact ids of each episode. This check re-renders a sample of final
conversations with the chat template and reports two rates:

* ``drift``: the context tokens (everything the policy did not generate) differ from what the
  template renders around the generated turns of the final conversation: the text differs, the
  tokens differ from a tokenization of the whole re-rendered text, or the template rewrites an
  earlier turn. This is what the model would see at inference but not in training: above a
  threshold the run fails.
* ``retok``: a plain re-tokenization of the whole re-rendered conversation differs from the
  stored ids at all (non-canonical splits the policy sampled, or a template that trims the
  model's own text when it re-renders a turn, as Llama-3.1, Gemma and Mistral do).
  Informational: it is the error that re-tokenizing history would have introduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from resrl_agents.rollout.chat import ChatRenderer, TemplateRewriteError
from resrl_agents.rollout.types import Trajectory


@dataclass(frozen=True)
class DriftReport:
    checked: int
    drift_rate: float
    retok_rate: float


def _expected_context(traj: Trajectory, renderer: ChatRenderer) -> list[str] | None:
    """Context text before each turn, rendered from the final conversation around the stored
    generated ids; None when the messages do not match the turns or the template rewrites them."""
    msgs, tools = list(traj.messages), list(traj.tools or []) or None
    asst = [i for i, m in enumerate(msgs) if m.get("role") == "assistant"]
    if len(asst) != len(traj.turns):
        return None
    end_id = renderer.turn_end[1]
    try:
        texts = [renderer.render(msgs[: asst[0]], add_generation_prompt=True, tools=tools)]
        for a, nxt, t in zip(asst, asst[1:], traj.turns):
            stopped = end_id is not None and t.action_ids[-1:] == (end_id,)
            texts.append(renderer.continuation(msgs[:a], msgs[a], t.action_ids, stopped,
                                               msgs[a + 1: nxt], tools))
    except TemplateRewriteError:
        return None
    return texts


def _context_token_mismatch(traj: Trajectory, contexts: list[str], renderer: ChatRenderer) -> bool:
    """Compare stored context tokens with the tokens of the whole re-rendered text lying in the
    same char spans (a seam where separate tokenization splits differently shows here)."""
    spans, pos, text = [], 0, ""  # char spans of context segments and their stored ids
    for t, ctx in zip(traj.turns, contexts):
        action_text = renderer.decode(t.action_ids)
        spans.append((pos, pos + len(ctx), list(t.obs_ids)))
        text += ctx + action_text
        pos += len(ctx) + len(action_text)
    enc = renderer.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    for start, end, stored in spans:
        got = [i for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]) if a < end and b > start]
        if got != stored:
            return True
    return False


def drift_check(trajs: Sequence[Trajectory], renderer: ChatRenderer) -> DriftReport:
    drift = retok = 0
    for traj in trajs:
        contexts = _expected_context(traj, renderer)
        if (contexts is None or any(renderer.decode(t.obs_ids) != c for t, c in zip(traj.turns, contexts))
                or _context_token_mismatch(traj, contexts, renderer)):
            drift += 1
        stored = traj.token_ids()
        text = renderer.render(list(traj.messages), add_generation_prompt=False, tools=list(traj.tools or []))
        stored_text = renderer.decode(stored)
        # the last assistant turn may be cut (no turn end): compare only what was stored
        text = text[: len(stored_text)] if text.startswith(stored_text) else text
        if renderer.encode(text) != stored:
            retok += 1
    n = len(trajs)
    return DriftReport(n, drift / n if n else 0.0, retok / n if n else 0.0)
