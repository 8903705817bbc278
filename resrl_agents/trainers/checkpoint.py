"""HF-format checkpoints written atomically, with the trainer state needed to resume.

Layout: ``<output_dir>/checkpoints/step_000010/`` holds ``model.safetensors``, ``config.json``,
tokenizer files (so ``AutoModelForCausalLM.from_pretrained`` loads it) and ``trainer_state.pt``
(step, optimizer, scheduler, RNG states). With LoRA (``model.lora.r > 0``) the model files are
PEFT's adapter files (``adapter_model.safetensors``, ``adapter_config.json``) instead, plus, when
asked (``trainer.export_merged``), ``merged/``: a full HF folder with the adapters merged in.
A checkpoint is built in a temporary sibling folder and renamed into place, so a crash never
leaves a half-written ``step_*`` folder.

Under DeepSpeed every rank takes part: each writes its ZeRO partitions (``deepspeed/``) and its
RNG state (``rng_rank<r>.pt``) into the shared temporary folder; rank 0 writes the rest and
renames the folder once all ranks are done.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from resrl_agents.models.lora import is_peft, save_merged

MERGED = "merged"  # the merged HF folder inside a LoRA checkpoint
_STEP = re.compile(r"^step_(\d+)$")


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP.match(p.name)) and (p / "trainer_state.pt").exists()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(output_dir)
    return dirs[-1] if dirs else None


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(output_dir: str | Path, step: int, model, tokenizer, trainer_state: dict, keep: int, *, engine=None,
                    merged: bool = False) -> Path:
    """Write ``step_<step>`` atomically. ``engine`` (``trainers/distributed.py``): every rank of a
    data-parallel run calls this; ``model`` must hold the full weights on rank 0. ``merged``: a
    LoRA model also gets ``merged/`` (a plain model is a full HF folder already)."""
    rank = engine.rank if engine is not None else 0
    root = Path(output_dir) / "checkpoints"
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp_step_{step:06d}"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    if engine is not None:
        engine.barrier()
        engine.save_shards(tmp)
        if rank > 0:
            torch.save(rng_state(), tmp / f"rng_rank{rank}.pt")
        engine.barrier()
    if rank == 0:
        model.save_pretrained(tmp, safe_serialization=True)  # LoRA: the adapters only (PEFT format)
        tokenizer.save_pretrained(tmp)
        if merged and is_peft(model):
            save_merged(model, tokenizer, tmp / MERGED)
        torch.save(trainer_state | {"step": step, "rng": rng_state()}, tmp / "trainer_state.pt")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in checkpoint_dirs(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    if engine is not None:
        engine.barrier()  # no rank goes on (or resumes) before the folder is in place
    return final


def load_trainer_state(ckpt: Path, rank: int = 0) -> dict:
    """The trainer state, with this rank's RNG state."""
    state = torch.load(ckpt / "trainer_state.pt", map_location="cpu", weights_only=False)
    if rank > 0:
        state["rng"] = torch.load(ckpt / f"rng_rank{rank}.pt", map_location="cpu", weights_only=False)
    return state
