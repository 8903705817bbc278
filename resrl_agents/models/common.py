"""Small shared pieces of model loading: dtypes, the cache root, atomic saves, tokenizer fixes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from resrl_agents.models.chat_template import CHAT_TEMPLATE, ENDOFTEXT, IM_END
from resrl_agents.rollout.chat import ChatRenderer

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    """Map a config dtype string (float32 | bfloat16 | float16, or fp32/bf16/fp16) to torch."""
    if isinstance(name, torch.dtype):
        return name
    key = str(name).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(_DTYPES)}")
    return _DTYPES[key]


def cache_root(cache_dir: str | None) -> Path:
    """Where built / converted models live: ``cache_dir`` or ``~/.cache/resrl_agents``."""
    return Path(cache_dir).expanduser() if cache_dir else Path.home() / ".cache" / "resrl_agents"


def save_atomic(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: str | Path
) -> Path:
    """Save model + tokenizer with ``save_pretrained`` into a temp dir, then rename it into place.

    A reader therefore sees either no directory or a complete one. If another process won the
    race and ``out_dir`` already exists, its copy is kept and ours is discarded.
    """
    out = Path(out_dir).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a cache is shared by the user's runs
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, out)
        except OSError:
            if not (out / "config.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give the tokenizer a pad token if it has none: ``<|endoftext|>`` when known, else eos.

    Padding side is left at the tokenizer's default (right); generation code pads left itself.
    """
    if tokenizer.pad_token is not None:
        return
    vocab = tokenizer.get_vocab()
    tokenizer.pad_token = ENDOFTEXT if ENDOFTEXT in vocab else tokenizer.eos_token


def use_project_template(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Install our ChatML template and make ``<|im_end|>`` the eos of tokenizer and generation."""
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    if im_end is None or im_end == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no {IM_END} token, so it cannot use the project's ChatML template; "
                         "give it a chat template of its own (chat_template in tokenizer_config.json)")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.eos_token = IM_END
    model.config.eos_token_id = im_end
    model.generation_config.eos_token_id = im_end
    sync_pad_id(model, tokenizer)


def add_turn_end_stop(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Stop generation at every id of the model's ``generation_config`` (several eos ids, e.g.
    Llama-3.1's ``<|end_of_text|>``, ``<|eom_id|>``, ``<|eot_id|>``) and at the template's
    turn-end token, which older configs forget (Llama-3's ``<|eot_id|>``, Gemma's
    ``<end_of_turn>``)."""
    eos = model.generation_config.eos_token_id
    eos = tokenizer.eos_token_id if eos is None else eos
    ids = list(eos) if isinstance(eos, (list, tuple)) else [eos]
    end_id = ChatRenderer(tokenizer).turn_end[1]
    ids = [i for i in dict.fromkeys(ids + [end_id]) if i is not None]
    model.generation_config.eos_token_id = ids[0] if len(ids) == 1 else ids


def sync_pad_id(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Copy the tokenizer's pad id into the model and generation configs."""
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
