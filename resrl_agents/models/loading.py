"""``load_policy``: the one entry point that turns a ``ModelConfig`` into (model, tokenizer)."""

from __future__ import annotations

import warnings

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from resrl_agents.config.schema import ModelConfig
from resrl_agents.models.common import (
    add_turn_end_stop,
    ensure_pad_token,
    resolve_dtype,
    sync_pad_id,
    use_project_template,
)
from resrl_agents.models.smollm2 import load_smollm2
from resrl_agents.models.tiny import load_tiny

NAMES = ("tiny", "smollm2", "hf")


def load_pretrained(path: str, dtype: str):
    """Load an HF checkpoint (hub id or local dir, e.g. one of our saved checkpoints)."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def load_policy(
    cfg: ModelConfig, device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Build or load the policy named by ``cfg.name`` (tiny | smollm2 | hf).

    ``cfg.path`` set with tiny / smollm2 means "resume from this checkpoint" and is loaded
    instead of the cache; our chat template is installed on both. With ``hf`` the checkpoint's
    own chat template is kept when it has one (ChatML otherwise), and generation stops at the
    ids of its ``generation_config`` plus the template's turn-end token. The model is returned in
    eval mode on ``device``; the tokenizer pads on the right (its default) and always has a pad token.
    """
    if cfg.name not in NAMES:
        raise ValueError(f"unknown model name {cfg.name!r}; expected one of {NAMES}")
    if cfg.path is not None:
        model, tokenizer = load_pretrained(cfg.path, cfg.dtype)
    elif cfg.name == "tiny":
        model, tokenizer = load_tiny(cfg)
    elif cfg.name == "smollm2":
        model, tokenizer = load_smollm2(cfg)
    else:
        raise ValueError("model name 'hf' needs model.path (an HF hub id or a local directory)")
    ensure_pad_token(tokenizer)
    if cfg.name in ("tiny", "smollm2"):
        use_project_template(model, tokenizer)
    elif tokenizer.chat_template is None:
        warnings.warn(f"{cfg.path} has no chat template; using the project's ChatML template")
        use_project_template(model, tokenizer)
    else:
        add_turn_end_stop(model, tokenizer)
    sync_pad_id(model, tokenizer)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.eval()
    if torch.device(device).type == "cuda":
        # PyTorch's first choice of SDPA kernel for bf16/fp16 on recent GPUs is cuDNN's, which
        # builds an execution plan for every new shape: ~20 ms per call when each decode step
        # has a new length (H200: bf16 rollouts ~15x slower than float32). Flash and
        # memory-efficient attention have no per-shape cost.
        torch.backends.cuda.enable_cudnn_sdp(False)
    return model.to(device), tokenizer
