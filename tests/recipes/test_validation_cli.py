"""trainer.eval_every through the real CLI: a step-0 baseline, every N steps and the last step,
and validation leaves training exactly as it was (own envs, own sampling seeds)."""

from __future__ import annotations

import pytest
from test_train_cli import train

from resrl_agents.trainers.metrics import read_metrics

pytestmark = pytest.mark.slow


def test_validation_every_n_steps_and_training_unchanged(tmp_path):
    common = ["env=math", "model=tiny", "algo=nsr", "trainer.lr=1e-3", "trainer.steps=3", "rollout.prompts_per_step=2",
              "rollout.group_size=4", "rollout.max_new_tokens=12", "trainer.save_every=100",
              f"model.cache_dir={tmp_path / 'cache'}"]
    res = train(*common, "trainer.eval_every=2", "trainer.eval.num_tasks=4", "trainer.eval.n=4", "trainer.eval.ks=[1,4]",
                f"trainer.output_dir={tmp_path / 'val'}")
    assert res.returncode == 0, res.stderr[-3000:]
    # the run ends by printing its validation curve (steps 0, 2, 3) and writing it as a PNG
    curve = res.stdout[res.stdout.index("validation (held-out):"):].splitlines()
    assert [line.split()[1] for line in curve[1:4]] == ["0", "2", "3"] and "pass@4" in curve[0]
    assert (tmp_path / "val" / "val_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert train(*common, f"trainer.output_dir={tmp_path / 'plain'}").returncode == 0
    rows, plain = read_metrics(tmp_path / "val" / "metrics.jsonl"), read_metrics(tmp_path / "plain" / "metrics.jsonl")
    val = {r["step"]: r for r in rows if "val/avg@4" in r}
    assert sorted(val) == [0, 2, 3]  # baseline, every 2 steps, the last step
    assert [r["step"] for r in rows] == [0, 1, 2, 3] and "loss/policy" not in rows[0]
    for r in val.values():
        assert 0.0 <= r["val/pass@1"] <= r["val/pass@4"] <= 1.0 and 0.0 <= r["val/avg@1_greedy"] <= 1.0
        assert r["val/pass@1"] == pytest.approx(r["val/avg@4"]) and r["perf/val_s"] > 0
    for a, b in zip(rows[1:], plain):
        for key in ("loss/policy", "loss/grad_norm", "rollout/response_len", "rollout/reward_mean"):
            assert a[key] == b[key], (a["step"], key)


def test_negative_eval_every_is_a_clear_error(tmp_path):
    res = train("env=math", "model=tiny", "trainer.steps=1", "trainer.eval_every=-1",
                f"trainer.output_dir={tmp_path}", f"model.cache_dir={tmp_path / 'cache'}")
    assert res.returncode != 0 and "trainer.eval_every must be >= 0" in res.stderr
