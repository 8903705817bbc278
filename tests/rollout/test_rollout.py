"""Rollout with the real tiny model: exact ids, masks, layouts, drift, env crashes."""

from __future__ import annotations

import pytest
import torch

from resrl_agents.envs.base import TextEnv
from resrl_agents.rollout.agent_loop import rollout
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.collate import collate
from resrl_agents.rollout.drift import drift_check
from resrl_agents.rollout.policy import HFPolicy, SamplingParams
from resrl_agents.trainers.loss import token_logp


class CountingEnv(TextEnv):
    """Test fixture: observation 'room <seed>-<turn>' for ``max_turns`` turns; crashes on demand."""

    def __init__(self, max_turns: int = 3, crash_at: int | None = None):
        super().__init__()
        self.max_turns, self.crash_at = max_turns, crash_at

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seed_, self.turn = seed, 0
        return f"room {seed}-0", {"task_id": str(seed), "task": "count rooms", "family": "count",
                                  "system_prompt": "Answer with one word.", "admissible_actions": ["go", "stay"]}

    def step(self, action):
        self.turn += 1
        if self.crash_at == self.turn:
            raise RuntimeError("engine died")
        won = "go" in action
        return f"room {self.seed_}-{self.turn}", float(won), False, self.turn >= self.max_turns, {"won": won}


def _run(tiny, history, envs, seeds=None, max_new=12):
    model, tok = tiny
    seeds = seeds or [7] * len(envs)
    return rollout(envs, seeds, [0] * len(envs), HFPolicy(model, tok), ChatRenderer(tok), history=history,
                   max_new_tokens=max_new, max_context_tokens=4096, temperature=1.0, top_p=1.0, seed=3)


def test_full_layout_masks_exactly_generated_tokens(tiny):
    model, tok = tiny
    trajs = _run(tiny, "full", [CountingEnv() for _ in range(4)])
    for traj in trajs:
        assert traj.num_turns == 3 and traj.truncated
        ids, mask = traj.token_ids(), traj.loss_mask()
        spans, cur = [], []
        for i, m in zip(ids, mask):  # maximal runs of mask==1
            if m:
                cur.append(i)
            elif cur:
                spans.append(cur)
                cur = []
        if cur:
            spans.append(cur)
        generated = [list(t.action_ids) for t in traj.turns if t.action_ids]
        assert spans == generated
        assert [tok.decode(s) for s in spans] == [tok.decode(g) for g in generated]


def test_sampling_logp_matches_training_forward(tiny):
    """The stored sampling log-probs (T=1, top-p=1) equal a fresh forward on the stored ids."""
    model, tok = tiny
    trajs = _run(tiny, "full", [CountingEnv(max_turns=2) for _ in range(3)])
    batch = collate(trajs, [0.0] * 3, [0.0] * 3, history="full", pad_id=tok.pad_token_id)
    with torch.no_grad():
        logp = token_logp(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, batch.input_ids)
    m = batch.loss_mask.bool()
    torch.testing.assert_close(logp[m], batch.logp_sample[m], atol=2e-4, rtol=0)


def test_drift_check_reports_zero_on_real_rollouts(tiny):
    model, tok = tiny
    trajs = _run(tiny, "full", [CountingEnv(max_turns=4) for _ in range(6)], max_new=16)
    report = drift_check(trajs, ChatRenderer(tok))
    assert report.checked == 6 and report.drift_rate == 0.0


def test_window_layout_is_the_same_with_and_without_prefix_reuse(tiny):
    """window:k prompts reuse the cached system prompt and task; the episodes do not change."""
    model, tok = tiny
    runs = []
    for prefix_cache in (True, False):
        envs = [CountingEnv(max_turns=4) for _ in range(3)]
        runs.append(rollout(envs, [7, 7, 8], [0, 0, 1], HFPolicy(model, tok, prefix_cache=prefix_cache),
                            ChatRenderer(tok), history="window:2", max_new_tokens=12, max_context_tokens=4096,
                            temperature=1.0, top_p=1.0, seed=3))
    for a, b in zip(*runs):
        assert [t.action_ids for t in a.turns] == [t.action_ids for t in b.turns]
        assert [t.obs_ids for t in a.turns] == [t.obs_ids for t in b.turns]


def test_window_layout_prompts_hold_exactly_k_past_turns(tiny):
    trajs = _run(tiny, "window:2", [CountingEnv(max_turns=4)])
    (traj,) = trajs
    for i, turn in enumerate(traj.turns):
        n_obs = turn.obs_text.count("[Observation ")
        assert n_obs == min(i, 2)
        assert f"Current observation: room 7-{i}" in turn.obs_text
    batch = collate(trajs, [1.0], [0.5], history="window:2", pad_id=0)
    assert batch.num_rows == 4 and torch.all(batch.seq_adv == 0.5)


def test_group_reset_gives_identical_first_prompts(tiny):
    trajs = _run(tiny, "full", [CountingEnv(max_turns=1) for _ in range(4)])
    assert len({tuple(t.turns[0].obs_ids) for t in trajs}) == 1


def test_env_crash_marks_trajectory_and_run_goes_on(tiny):
    trajs = _run(tiny, "full", [CountingEnv(crash_at=2), CountingEnv()])
    assert trajs[0].error.startswith("RuntimeError") and trajs[0].num_turns == 2
    assert not trajs[1].error and trajs[1].num_turns == 3


def test_greedy_generation_is_deterministic(tiny):
    model, tok = tiny
    pol = HFPolicy(model, tok)
    prompts = [tok("hello world")["input_ids"], tok("go to countertop 1")["input_ids"]]
    a = pol.generate(prompts, SamplingParams(max_new_tokens=8, temperature=0))
    b = pol.generate(prompts, SamplingParams(max_new_tokens=8, temperature=0))
    assert a == b and all(len(g.ids) == len(g.logp) for g in a)


@pytest.mark.parametrize("history", ["window", "window:x", "partial"])
def test_bad_history_layout_is_a_clear_error(tiny, history):
    with pytest.raises(ValueError, match="rollout.history"):
        _run(tiny, history, [CountingEnv()])


def test_full_layout_shows_admissible_actions(tiny):
    (traj,) = _run(tiny, "full", [CountingEnv(max_turns=1)])
    assert traj.messages[1]["content"] == "room 7-0\nAdmissible actions: [go, stay]"


def test_rollout_releases_the_kv_caches_it_kept(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok)
    rollout([CountingEnv(), CountingEnv()], [1, 2], [0, 1], policy, ChatRenderer(tok), history="full",
            max_new_tokens=6, max_context_tokens=4096, temperature=1.0, top_p=1.0, seed=0)
    assert len(policy.store) == 0
    policy.generate([tok("hello")["input_ids"]], SamplingParams(max_new_tokens=3, temperature=0))
    assert len(policy.store) == 1  # kept between turns while episodes run
