"""``load_policy``: the one entry point that turns a ``ModelConfig`` into (model, tokenizer)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from resrl_agents.config.errors import ConfigError
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


def checked_model_path(path: str) -> str:
    """``path`` (``~`` expanded) when it is a folder or may be a hub id (``name`` or ``org/name``);
    a path that can only be local and is missing is a ConfigError, not transformers' traceback
    about hub repo ids."""
    local = Path(path).expanduser()
    if local.is_dir():
        return str(local)
    if local.exists():
        raise ConfigError(f"model.path={path}: is a file; give the checkpoint folder (with config.json)")
    if path.startswith(("/", ".", "~")) or path.count("/") > 1 or "\\" in path:
        raise ConfigError(f"model.path={path}: folder does not exist (give a checkpoint folder or a hub id)")
    return path


def load_pretrained(path: str, dtype: str):
    """Load an HF checkpoint (hub id or local dir, e.g. one of our saved checkpoints)."""
    path = checked_model_path(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
    except OSError as e:
        if Path(path).is_dir():
            raise
        raise ConfigError(f"model.path={path}: no such folder, and not loadable as a hub id "
                          f"({str(e).splitlines()[0]})") from e
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
