"""``env=dataset``: the real CLI trains the tiny model on a small jsonl with the README's example
reward functions, and logs each function as ``reward/<name>``."""

from __future__ import annotations

import json
import math

import pytest

from resrl_agents.trainers.metrics import read_metrics
from resrl_agents.trainers.recipe import rollout_metrics
from tests.recipes.test_train_cli import REPO, train

REWARDS = REPO / "examples" / "dataset" / "rewards.py"


@pytest.mark.slow
def test_train_on_a_jsonl_with_two_weighted_reward_functions(tmp_path):
    data = tmp_path / "prompts.jsonl"
    rows = [{"prompt": f"What is {a} + {a + 1}?", "answer": str(2 * a + 1)} for a in range(10, 18)]
    rows[1]["prompt"] = [{"role": "system", "content": "Answer with a number."}, {"role": "user", "content": rows[1]["prompt"]}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = train("env=dataset", "model=tiny", "trainer.steps=2", "rollout.prompts_per_step=2", "rollout.group_size=4",
                "rollout.max_new_tokens=16", f"env.kwargs.path={data}", "env.kwargs.split=all",
                f"env.kwargs.reward_funcs=[{REWARDS}:correct,{REWARDS}:concise]", "env.kwargs.reward_weights=[1.0,0.5]",
                f"trainer.output_dir={tmp_path / 'run'}", f"model.cache_dir={tmp_path / 'cache'}")
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in metrics] == [1, 2]
    for r in metrics:
        assert 0.0 <= r["reward/correct"] <= 1.0 and 0.0 < r["reward/concise"] <= 0.2
        # the env's reward is the weighted sum of the components, episode by episode
        assert r["rollout/reward_mean"] == pytest.approx(r["reward/correct"] + 0.5 * r["reward/concise"], abs=1e-9)
        assert r["rollout/env_errors"] == 0.0 and r["rollout/drift_rate"] == 0.0
    assert any(r["loss/grad_norm"] > 0 for r in metrics)  # concise varies within a group: a real update


def test_reward_components_are_averaged_without_abstentions():
    ep = {"reward": 1.0, "won": True, "turns": 1, "invalid": 0, "response_len": 3, "truncated": False, "error": False,
          "family": "", "group": 0, "clipped": 0, "completion_lens": [3]}
    m = rollout_metrics([ep | {"components": {"a": 1.0, "b": math.nan}}, ep | {"components": {"a": 0.0, "b": 0.5}},
                         ep | {"components": {}}])
    assert m["reward/a"] == 0.5 and m["reward/b"] == 0.5  # (1 + 0) / 2; NaN (abstained) left out
    assert "reward/a" not in rollout_metrics([ep | {"components": {}}])
