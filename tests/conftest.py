"""Shared test setup: one CPU thread for torch (when some test imported it) and the shared data path.

This file must not import torch: env and tool tests assert that torch is never loaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before any test imports torch / numpy BLAS

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$RESRL_SHARED_DATA``, default ``<repo root>/../shared/data`` (read-only test data)."""
    return Path(os.environ.get("RESRL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; the test is skipped when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set RESRL_SHARED_DATA)")
    return path


@pytest.fixture(autouse=True)
def _torch_single_thread() -> None:
    """Pin torch to one intra-op thread if (and only if) a test module already imported it."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_cfg(tmp_path_factory):
    """The default tiny model config, cached in a session temp folder (never ~/.cache)."""
    from resrl_agents.config.schema import ModelConfig

    return ModelConfig(name="tiny", cache_dir=str(tmp_path_factory.mktemp("model_cache")))


@pytest.fixture(scope="session")
def tiny(tiny_cfg):
    """The real tiny Qwen3 policy: ``(model, tokenizer)`` through the public ``load_policy``, built
    once per session. torch is imported here, not at module level (env tests forbid it)."""
    import torch

    from resrl_agents.models import load_policy

    torch.set_num_threads(1)
    return load_policy(tiny_cfg)


@pytest.fixture(scope="session")
def tiny_tok(tiny):
    return tiny[1]
