"""``python -m resrl_agents.train env=alfworld model=hf model.path=<tiny model with its own chat
template>``: Llama-3.1- and Gemma-3-style models train with ``history=full`` at zero drift; the
Qwen3 template (which rewrites earlier turns) is refused there with a clear error, and it and
Mistral v3 train with ``window:k`` (``tests/chat_families.py``)."""

from __future__ import annotations

import importlib.util

import pytest

from chat_families import build_family
from resrl_agents.trainers.metrics import read_metrics

from test_train_cli import train

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("alfworld") is None, reason="alfworld is not installed")]
ARGS = ("env=alfworld", "model=hf", "algo=resrl", "rollout.prompts_per_step=2", "rollout.group_size=2",
        "rollout.max_new_tokens=24", "rollout.max_context_tokens=2048", "env.kwargs.max_turns=3",
        "rollout.drift_check_frac=1.0")


@pytest.mark.parametrize("family", ["llama3", "gemma"])
def test_two_rl_steps_with_full_history_and_zero_drift(family, tmp_path):
    path = build_family(family, tmp_path / family)
    out = train(*ARGS, f"model.path={path}", "trainer.steps=2", f"trainer.output_dir={tmp_path / 'run'}")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["rollout/drift_rate"] == 0.0 and r["rollout/env_errors"] == 0.0 and r["rollout/episode_len"] > 1
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(tmp_path / "run" / "checkpoints" / "step_000002")
    assert saved.chat_template == AutoTokenizer.from_pretrained(path).chat_template  # the model's own, kept


def test_qwen3_template_is_refused_with_full_history(tmp_path):
    path = build_family("qwen3", tmp_path / "qwen3")
    out = train(*ARGS, f"model.path={path}", "trainer.steps=1", f"trainer.output_dir={tmp_path / 'full'}")
    assert out.returncode != 0
    assert "re-renders earlier turns differently" in out.stderr and "rollout.history=window:<k>" in out.stderr


@pytest.mark.parametrize("family", ["qwen3", "mistral"])
def test_rewriting_templates_train_windowed(family, tmp_path):
    """Qwen3 drops earlier reasoning; Mistral v3 moves ALFWorld's system prompt to the last user turn."""
    path = build_family(family, tmp_path / family)
    out = train(*ARGS, f"model.path={path}", "trainer.steps=1", "rollout.history=window:2",
                f"trainer.output_dir={tmp_path / 'window'}")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = read_metrics(tmp_path / "window" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1] and rows[0]["rollout/env_errors"] == 0.0
