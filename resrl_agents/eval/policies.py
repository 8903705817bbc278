"""Policy backends for eval: the training backend (HF), vLLM, or an OpenAI endpoint.

All three implement ``rollout.policy.Policy``, so eval runs the very agent loop of training.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

from resrl_agents.config.eval_schema import PolicyConfig
from resrl_agents.config.schema import ModelConfig
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.vllm_policy import VLLMPolicy, free_cuda, policy_eos_ids
from resrl_agents.rollout.policy import Policy

BACKENDS = ("hf", "vllm", "openai")


@dataclass
class LoadedPolicy:
    """A ready policy, the renderer of its prompts, and how to release it."""

    policy: Policy
    renderer: ChatRenderer
    close: Callable[[], None] = field(default=lambda: None)


def resolve_device(name: str):
    """``auto`` -> cuda when available, else cpu; anything else is passed to ``torch.device``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_tokenizer(cfg: ModelConfig):
    """The tokenizer (with chat template and eos) ``load_policy(cfg)`` would return, without
    loading the weights when the model is a checkpoint directory."""
    from resrl_agents.models import load_policy

    if cfg.path is None:  # tiny / smollm2 are built or read from the cache (small)
        return load_policy(cfg, device="cpu")[1]
    from transformers import AutoTokenizer

    from resrl_agents.models.chat_template import CHAT_TEMPLATE, IM_END
    from resrl_agents.models.common import ensure_pad_token
    from resrl_agents.models.loading import checked_model_path

    tok = AutoTokenizer.from_pretrained(checked_model_path(cfg.path))
    ensure_pad_token(tok)
    if cfg.name in ("tiny", "smollm2"):
        tok.chat_template, tok.eos_token = CHAT_TEMPLATE, IM_END
    elif tok.chat_template is None:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def make_policy(pcfg: PolicyConfig, mcfg: ModelConfig, device: Any, *, checkpoint: str | None = None,
                seed: int = 0) -> LoadedPolicy:
    """Build the backend named by ``pcfg.backend``. ``checkpoint`` (from ``checkpoints=[...]``)
    replaces ``model.path`` for hf/vllm and ``policy.model`` for openai."""
    if pcfg.backend not in BACKENDS:
        raise ValueError(f"unknown policy backend {pcfg.backend!r}; expected one of {BACKENDS}")
    mcfg = copy.copy(mcfg)
    if checkpoint is not None and pcfg.backend != "openai":
        mcfg.path = checkpoint
    if pcfg.backend == "hf":
        from resrl_agents.models import load_policy
        from resrl_agents.rollout.policy import HFPolicy

        model, tok = load_policy(mcfg, device=device)
        return LoadedPolicy(HFPolicy(model, tok, device), ChatRenderer(tok), close=free_cuda)
    tok = load_tokenizer(mcfg)
    if pcfg.backend == "vllm":
        if mcfg.path is None:
            raise ValueError("policy=vllm needs model.path (an HF checkpoint directory)")
        policy = VLLMPolicy(mcfg.path, policy_eos_ids(mcfg, mcfg.path, tok), dtype=mcfg.dtype, seed=seed,
                            gpu_memory_utilization=pcfg.gpu_memory_utilization,
                            tensor_parallel_size=pcfg.tensor_parallel_size, max_model_len=pcfg.max_model_len,
                            enforce_eager=pcfg.enforce_eager, kv_cache_memory_bytes=pcfg.kv_cache_memory_bytes,
                            pad_id=tok.pad_token_id)
        return LoadedPolicy(policy, ChatRenderer(tok), close=policy.close)
    import openai

    from resrl_agents.eval.openai_policy import OpenAIPolicy

    name = checkpoint if checkpoint is not None else pcfg.model
    if not pcfg.base_url or not name:
        raise ValueError("policy=openai needs policy.base_url and policy.model")
    client = openai.OpenAI(base_url=pcfg.base_url, api_key=pcfg.api_key or "EMPTY",
                           timeout=pcfg.timeout_s, max_retries=pcfg.max_retries)
    renderer = ChatRenderer(tok)
    policy = OpenAIPolicy(client, name, renderer, concurrency=pcfg.concurrency, send_seed=pcfg.send_seed)
    return LoadedPolicy(policy, renderer, close=client.close)
