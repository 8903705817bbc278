"""Sampling seeds shared by every policy backend (HF, vLLM, OpenAI endpoints)."""

from __future__ import annotations

_ROW_SEED_STRIDE = 1_000_000_007


def row_seed(seed: int, row: int) -> int:
    """Seed of row ``row`` of a batch sampled with ``seed``. Row 0 keeps ``seed`` (so a one-episode
    run matches the local backend); rows differ so identical prompts get independent samples."""
    return seed + row * _ROW_SEED_STRIDE
