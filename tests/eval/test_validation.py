"""Validation during training: the in-memory policy scores what the eval runner scores for the
same weights read back from disk, and unusable settings fail with the key to fix."""

from __future__ import annotations

import pytest

from resrl_agents.config.eval_schema import EvalConfig
from resrl_agents.config.schema import EnvConfig, ModelConfig, RolloutConfig, ValidationConfig
from resrl_agents.eval.runner import run_eval
from resrl_agents.eval.validation import Validator, check_validation_config
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.policy import HFPolicy

ENV = EnvConfig(name="math", id="resrl_agents/Math-v0", kwargs={"source": "arithmetic", "difficulty": 0},
                eval_kwargs={"split": "test"})


def test_in_memory_validation_equals_offline_eval_of_the_same_weights(tiny, tmp_path):
    model, tok = tiny
    v = ValidationConfig(num_tasks=3, n=4, ks=[1, 2, 4], temperature=1.0, seed=7, batch_size=5)
    validator = Validator(ENV, v, RolloutConfig(max_new_tokens=6, max_context_tokens=256))
    try:
        got = validator(HFPolicy(model, tok), ChatRenderer(tok))
        again = validator(HFPolicy(model, tok), ChatRenderer(tok))
    finally:
        validator.close()
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    common = dict(env=ENV, model=ModelConfig(name="tiny", path=str(tmp_path / "ckpt")), num_tasks=3, seed=7,
                  max_new_tokens=6, max_context_tokens=256, batch_size=5, device="cpu", plots=False)
    [sampled] = run_eval(EvalConfig(n=4, temperature=1.0, top_p=1.0, output_dir=str(tmp_path / "s"), **common))["runs"]
    [greedy] = run_eval(EvalConfig(n=1, temperature=0.0, output_dir=str(tmp_path / "g"), **common))["runs"]
    assert got.keys() - {"perf/val_s"} == {"val/avg@1_greedy", "val/avg@4", "val/response_len",
                                           "val/pass@1", "val/pass@2", "val/pass@4"}
    assert got["val/response_len"] == pytest.approx(sampled["response_len"])  # the very same episodes
    assert got["val/avg@4"] == pytest.approx(sampled["avg_at_n"])
    assert [got[f"val/pass@{k}"] for k in (1, 2, 4)] == pytest.approx([sampled["pass_at_k"][str(k)] for k in (1, 2, 4)])
    assert got["val/avg@1_greedy"] == pytest.approx(greedy["avg_at_n"])
    assert {k: x for k, x in again.items() if k != "perf/val_s"} == {k: x for k, x in got.items() if k != "perf/val_s"}


def test_default_ks_and_bad_settings_name_the_key():
    assert check_validation_config(ValidationConfig(n=8)) == [1, 2, 4, 8]
    assert check_validation_config(ValidationConfig(n=0, greedy=True)) == []
    with pytest.raises(ValueError, match=r"trainer.eval.ks=\[1, 16\].*drop \[16\]"):
        check_validation_config(ValidationConfig(n=8, ks=[1, 16]))
    with pytest.raises(ValueError, match="trainer.eval.n"):
        check_validation_config(ValidationConfig(n=0, greedy=False))
    with pytest.raises(ValueError, match="trainer.eval.num_tasks"):
        check_validation_config(ValidationConfig(num_tasks=0))
