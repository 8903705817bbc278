"""ALFWorld rollouts with tiny models that speak Llama-3.1, Gemma-3, Mistral v3 and Qwen3 chat
formats (``tests/chat_families.py``): exact ids, zero drift with ``history=full``, and a clear
refusal (then ``window:k``) for templates that rewrite earlier turns."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from chat_families import build_family
from resrl_agents.config.schema import ModelConfig
from resrl_agents.models import load_policy
from resrl_agents.rollout.agent_loop import rollout
from resrl_agents.rollout.chat import ChatRenderer, TemplateRewriteError
from resrl_agents.rollout.drift import drift_check
from resrl_agents.rollout.policy import HFPolicy
from resrl_agents.trainers.recipe import make_envs

pytestmark = pytest.mark.skipif(importlib.util.find_spec("alfworld") is None, reason="alfworld is not installed")
SEEDS, GROUPS = [0, 0, 1, 1], [0, 0, 1, 1]


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """``name -> (model, tokenizer)`` loaded the way ``model=hf model.path=...`` loads them."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("families")
    return {f: load_policy(ModelConfig(name="hf", path=str(build_family(f, root / f))))
            for f in ("llama3", "gemma", "mistral", "qwen3")}


def play(model, tok, history: str, max_turns: int = 4):
    envs = make_envs("resrl_agents/ALFWorld-v0", {"max_turns": max_turns}, len(SEEDS))
    return rollout(envs, SEEDS, GROUPS, HFPolicy(model, tok), ChatRenderer(tok), history=history, max_new_tokens=24,
                   max_context_tokens=4096, temperature=1.0, top_p=1.0, seed=0)


@pytest.mark.parametrize("name", ["llama3", "gemma"])
def test_full_history_keeps_exact_ids_with_zero_drift(families, name):
    model, tok = families[name]
    renderer = ChatRenderer(tok)
    trajs = play(model, tok, "full")
    assert sum(t.num_turns for t in trajs) > len(trajs)  # multi-turn episodes
    report = drift_check(trajs, renderer)
    assert report.checked == 4 and report.drift_rate == 0.0
    assert report.retok_rate > 0  # the template trims the model's text when re-rendering it; the ids stay
    stops = set(model.generation_config.eos_token_id)
    end_id = renderer.turn_end[1]
    for t in trajs:
        assert list(t.turns[0].obs_ids) == renderer.prompt(list(t.messages[:2]))[1]  # system + first user
        for k, turn in enumerate(t.turns[:-1]):  # an earlier turn ended at the turn end or was cut
            assert turn.action_ids[-1] == end_id or (len(turn.action_ids) == 24 and turn.action_ids[-1] not in stops)
            closing = "" if turn.action_ids[-1] == end_id else renderer.turn_end[0]
            assert renderer.decode(t.turns[k + 1].obs_ids).startswith(closing)


def test_a_stop_id_that_is_not_the_turn_end_ends_the_episode(families):
    """Llama's <|end_of_text|> (here: the token the model samples first, made a stop id) ends the
    text, so the episode ends there instead of appending a turn the template would not show."""
    model, tok = families["llama3"]
    trajs = play(model, tok, "full")
    first = trajs[0].turns[0].action_ids[0]
    assert first != ChatRenderer(tok).turn_end[1]
    model.generation_config.eos_token_id = [first, *model.generation_config.eos_token_id]
    try:
        again = play(model, tok, "full")
    finally:
        model.generation_config.eos_token_id = model.generation_config.eos_token_id[1:]
    assert again[0].turns[0].action_ids == (first,) and again[0].num_turns == 1 and again[0].truncated
    assert [m["role"] for m in again[0].messages][-1] == "assistant"  # no observation after it


@pytest.mark.parametrize("name", ["qwen3", "mistral"])
def test_rewriting_templates_are_refused_under_full_history_and_work_windowed(families, name):
    """Qwen3 drops earlier reasoning; Mistral v3 moves ALFWorld's system prompt to the last user turn."""
    model, tok = families[name]
    with pytest.raises(TemplateRewriteError, match=r"rollout.history=window:<k>"):
        play(model, tok, "full")
    trajs = play(model, tok, "window:2")
    assert all(t.num_turns == 4 for t in trajs)
    for t in trajs:
        assert all(turn.action_ids and len(turn.action_logp) == len(turn.action_ids) for turn in t.turns)
