"""Training's rollout policy, by ``rollout.backend``: the trained model itself through
``HFPolicy``, or an in-process vLLM engine that receives every update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resrl_agents.config.schema import ModelConfig, RolloutConfig
from resrl_agents.models.lora import is_peft, save_merged
from resrl_agents.rollout.policy import HFPolicy, Policy

TRAIN_BACKENDS = ("hf", "vllm")  # openai cannot receive weight updates


def make_rollout_policy(rcfg: RolloutConfig, mcfg: ModelConfig, model, tokenizer, device: Any, *, output_dir: str,
                        seed: int, hidden_layer: int | None = None, hidden_position: str = "predicting") -> Policy:
    """Training's rollout policy, by ``rcfg.backend``.

    hf: ``HFPolicy`` over the trained model itself (every update is seen at once), keeping
    ``hidden_layer``'s states of the sampled tokens (at ``hidden_position``) when that is set. vllm: an
    in-process ``VLLMPolicy`` started from the model's current weights, read from ``mcfg.path``
    when that is a local checkpoint directory (a resumed run's checkpoint), else from
    ``<output_dir>/vllm_init`` where the loaded model (LoRA: merged) and tokenizer are saved once;
    the caller must push each update with ``policy.load_weights(hf_state_dict(model).items())``. Its context
    holds the longest episode (``max_context_tokens + max_new_tokens``, capped by the model's);
    it runs eagerly off-GPU and takes ``rollout.vllm_gpu_memory_utilization`` of a GPU (on CPU, of
    host memory, unless ``$VLLM_CPU_KVCACHE_SPACE=<GiB>`` sizes its KV cache).
    """
    if rcfg.backend == "openai":
        raise ValueError("rollout.backend=openai cannot receive weight updates; use it in eval (policy=openai)")
    if rcfg.backend not in TRAIN_BACKENDS:
        raise ValueError(f"unknown rollout.backend {rcfg.backend!r}; expected one of {TRAIN_BACKENDS}")
    if rcfg.backend == "hf":
        return HFPolicy(model, tokenizer, device, hidden_layer=hidden_layer, hidden_position=hidden_position)
    from resrl_agents.rollout.vllm_policy import VLLMPolicy, policy_eos_ids

    from_path = mcfg.path is not None and Path(mcfg.path).is_dir() and not is_peft(model)
    path = mcfg.path if from_path else str(Path(output_dir) / "vllm_init")
    if path != mcfg.path:
        save_merged(model, tokenizer, path)  # LoRA: the adapters merged in
    max_len = rcfg.max_context_tokens + rcfg.max_new_tokens
    max_len = min(max_len, getattr(model.config, "max_position_embeddings", None) or max_len)
    return VLLMPolicy(path, policy_eos_ids(mcfg, path, tokenizer), dtype=mcfg.dtype, seed=seed,
                      gpu_memory_utilization=rcfg.vllm_gpu_memory_utilization, tensor_parallel_size=1,
                      max_model_len=max_len, enforce_eager=getattr(device, "type", str(device)) != "cuda",
                      in_process=True, pad_id=tokenizer.pad_token_id)
