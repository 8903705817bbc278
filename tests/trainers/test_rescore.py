"""Old log-probs and ResRL states from the rollout (``trainer.rescore``): the decode loop's hidden
states and sampling log-probs match a scoring pass over the same tokens, the step then makes no
no-grad forward, and its update equals the one after a scoring pass; the switch's errors."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from resrl_agents.config.schema import AlgoConfig, EnvConfig, RolloutConfig, TrainConfig, TrainerConfig
from resrl_agents.models.hooks import capture_hidden
from resrl_agents.rollout.collate import collate, rollout_hidden
from resrl_agents.trainers.forward import hidden_cols, policy_tokens
from resrl_agents.trainers.recipe import RLRecipe, rollout_is_exact

RESRL = AlgoConfig(name="resrl", resrl=True, rank=8, lam=0.1)
MATH = EnvConfig(name="math", id="resrl_agents/Math-v0", kwargs={"source": "arithmetic"})
TOOLS = EnvConfig(name="tools", id="resrl_agents/ToolUse-v0")  # multi-turn: the bundled warehouse tools


def make_recipe(tiny_cfg, out, rescore: str, algo: AlgoConfig = RESRL, trainer_kw: dict | None = None,
                env: EnvConfig = MATH, **rollout_kw) -> RLRecipe:
    rollout = RolloutConfig(group_size=4, prompts_per_step=2, max_new_tokens=16, drift_check_frac=0.0, **rollout_kw)
    cfg = TrainConfig(env=env, model=tiny_cfg, algo=algo, rollout=rollout,
                      trainer=TrainerConfig(output_dir=str(out), tensorboard=False, progress=False, device="cpu",
                                            warmup_steps=0, lr=1e-3, rescore=rescore, micro_batch_size=3,
                                            **(trainer_kw or {})))
    recipe = RLRecipe(cfg)
    recipe.setup()
    return recipe


def split_rewards(trajs):
    """Rewards 1, 0, 1, 0, ... inside every group, so every group is weighted."""
    return [dataclasses.replace(t, reward=float(i % 2)) for i, t in enumerate(trajs)]


@pytest.fixture(scope="module", params=["predicting", "own"])
def rolled(request, tiny_cfg, tmp_path_factory):
    """A ResRL recipe with rescore=auto and one rollout batch of it (hidden states kept at each
    ``algo.hidden_position``)."""
    algo = dataclasses.replace(RESRL, hidden_position=request.param)
    recipe = make_recipe(tiny_cfg, tmp_path_factory.mktemp("auto"), "auto", algo=algo)
    yield recipe, split_rewards(recipe._rollout_round(0, 0))
    recipe.cleanup()


def assert_rollout_states_equal_a_forward(recipe, trajs) -> torch.Tensor:
    """The rollout's states equal a forward over the collated tokens, at the recipe's position;
    the forward's logits ``(B, T, V)`` are returned."""
    assert recipe.rollout_exact and recipe.keep_hidden
    hidden = rollout_hidden(trajs)  # (N, H)
    batch = collate(trajs, [t.reward for t in trajs], [0.0] * len(trajs), history="full", pad_id=recipe.policy.pad_id)
    rows, cols = policy_tokens(batch.loss_mask)
    assert hidden is not None and hidden.shape == (rows.numel(), recipe.model.config.hidden_size)
    with torch.no_grad(), capture_hidden(recipe.model, -2) as got:
        logits = recipe.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (B, T, V)
    ref = got[0][rows, hidden_cols(cols, recipe.resrl.hidden_position)]  # (N, H) at t-1 or at t
    torch.testing.assert_close(hidden, ref, atol=1e-4, rtol=1e-4)
    return batch, logits


def test_rollout_states_and_logp_equal_a_forward_over_the_same_tokens(rolled):
    recipe, trajs = rolled
    batch, logits = assert_rollout_states_equal_a_forward(recipe, trajs)
    rows, cols = policy_tokens(batch.loss_mask)
    logp = torch.log_softmax(logits[rows, cols - 1], dim=-1).gather(1, batch.input_ids[rows, cols][:, None]).squeeze(1)
    torch.testing.assert_close(batch.logp_sample[rows, cols], logp, atol=1e-4, rtol=0)


@pytest.mark.parametrize("position", ["predicting", "own"])
def test_rollout_states_equal_a_forward_over_multi_turn_episodes(tiny_cfg, tmp_path, position):
    """Turns after the first start from the previous turn's kept cache (which, at ``own``, holds
    the reply's last token too): every turn's states still equal one forward over the episode."""
    algo = dataclasses.replace(RESRL, hidden_position=position)
    recipe = make_recipe(tiny_cfg, tmp_path, "auto", algo=algo, env=TOOLS, max_context_tokens=4096)
    try:
        trajs = recipe._rollout_round(0, 0)
        assert max(len(t.turns) for t in trajs) > 1
        assert_rollout_states_equal_a_forward(recipe, trajs)
    finally:
        recipe.cleanup()


def test_weights_from_the_rollout_equal_weights_from_the_scoring_pass(rolled, tiny_cfg, tmp_path):
    recipe, trajs = rolled
    always = make_recipe(tiny_cfg, tmp_path, "always", algo=recipe.cfg.algo)
    try:
        always.model.load_state_dict(recipe.model.state_dict())  # same weights
        batches = []
        for r in (recipe, always):
            batch = collate(trajs, [t.reward for t in trajs], [1.0 if t.reward else -1.0 for t in trajs],
                            history="full", pad_id=r.policy.pad_id, success=[t.reward > 0 for t in trajs])
            seeds = {g: 7 for g in batch.group_id.tolist()}
            _, scores, metrics = r._old_logp_and_weights(batch, trajs, seeds)
            batches.append((batch, list(scores.stats.values()), metrics))
        (b_roll, s_roll, m_roll), (b_score, s_score, m_score) = batches
        assert all(s.weighted for s in s_roll) and len(s_roll) == len(s_score) == 2
        assert m_roll == {} and m_score["perf/logp_mismatch_max"] < 1e-4  # float rounding only
        torch.testing.assert_close(b_roll.logp_old, b_roll.logp_sample)  # taken as is
        mask = b_roll.loss_mask.bool()
        torch.testing.assert_close(b_roll.logp_old[mask], b_score.logp_old[mask], atol=1e-4, rtol=0)
        assert not torch.equal(b_roll.weight, torch.ones_like(b_roll.weight))
        torch.testing.assert_close(b_roll.weight, b_score.weight, atol=1e-3, rtol=0)
    finally:
        always.cleanup()


def count_no_grad_forwards(model):
    calls = []
    handle = model.register_forward_pre_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    return calls, handle


def test_update_without_a_scoring_pass_equals_the_update_after_one(rolled, tiny_cfg, tmp_path):
    recipe, trajs = rolled
    never = make_recipe(tiny_cfg, tmp_path / "never", "never", algo=recipe.cfg.algo)
    always = make_recipe(tiny_cfg, tmp_path / "always", "always", algo=recipe.cfg.algo)
    try:
        start = copy.deepcopy(recipe.model.state_dict())
        results = {}
        for name, r in (("never", never), ("always", always)):
            r.model.load_state_dict(start)
            calls, handle = count_no_grad_forwards(r.model)
            grads = []  # the accumulated gradient the optimizer steps with
            pre = r.optimizer.register_step_pre_hook(
                lambda *_, r=r, grads=grads: grads.append([q.grad.clone() for q in r.model.parameters()]))
            metrics = r.learn(trajs)
            handle.remove(), pre.remove()
            results[name] = (metrics, calls, grads)
        (m_never, c_never, g_never), (m_always, c_always, g_always) = results["never"], results["always"]
        assert c_never and all(c_never)  # only the update's forwards, with gradients
        assert c_always.count(False) > 0  # the scoring pass ran
        assert "perf/logp_mismatch" in m_always and "perf/logp_mismatch" not in m_never
        assert m_never["loss/policy"] == pytest.approx(m_always["loss/policy"], rel=1e-4, abs=1e-6)
        assert len(g_never) == len(g_always) == 1  # one optimizer step
        total = sum(float(g.norm() ** 2) for g in g_always[0]) ** 0.5
        diff = sum(float((a - b).norm() ** 2) for a, b in zip(g_never[0], g_always[0])) ** 0.5
        assert total > 0 and diff / total < 1e-4  # the same gradient up to float rounding
    finally:
        never.cleanup()
        always.cleanup()


def test_rescore_switch_errors_name_the_key_and_the_fix(tiny_cfg, tmp_path):
    base = TrainConfig(trainer=TrainerConfig(rescore="sometimes"))
    with pytest.raises(ValueError, match="trainer.rescore must be"):
        rollout_is_exact(base)
    nucleus = TrainConfig(rollout=RolloutConfig(top_p=0.9), trainer=TrainerConfig(rescore="never"))
    with pytest.raises(ValueError, match="rescore=never needs .*top_p=1.*use trainer.rescore=auto"):
        rollout_is_exact(nucleus)
    assert not rollout_is_exact(TrainConfig(rollout=RolloutConfig(top_p=0.9)))  # auto: rescores
    assert not rollout_is_exact(TrainConfig(rollout=RolloutConfig(backend="vllm")))
    assert rollout_is_exact(TrainConfig())


@pytest.mark.parametrize("skip", [True, False])
def test_a_step_whose_advantages_are_all_zero_moves_no_weight(tiny_cfg, tmp_path, skip):
    """After a step with signal, AdamW's momentum would keep moving the weights on a step whose
    groups all tie (a zero gradient): ``trainer.skip_empty_updates`` takes no step then."""
    recipe = make_recipe(tiny_cfg, tmp_path, "auto", algo=AlgoConfig(), trainer_kw={"skip_empty_updates": skip})
    try:
        trajs = recipe._rollout_round(0, 0)
        first = recipe.learn(split_rewards(trajs))
        assert first["loss/optimizer_steps"] == 1.0
        before = [p.detach().clone() for p in recipe.model.parameters()]
        tied = recipe.learn([dataclasses.replace(t, reward=1.0) for t in trajs])
        moved = any(not torch.equal(a, p) for a, p in zip(before, recipe.model.parameters()))
        assert tied["loss/optimizer_steps"] == (0.0 if skip else 1.0)
        assert moved is not skip  # without the skip, momentum and weight decay drift the weights
        assert tied["loss/lr"] == first["loss/lr"] == 1e-3
    finally:
        recipe.cleanup()
