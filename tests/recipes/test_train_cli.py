"""Recipe tests: the real CLI on a tiny config, checkpoints, resume, config errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resrl_agents.trainers.metrics import read_metrics

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def train(*overrides: str, module: str = "resrl_agents.train", timeout: int = 300) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", module, "trainer.num_threads=1", "trainer.progress=false", *overrides]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_train_math_tiny_three_steps(tmp_path):
    tic = time.perf_counter()
    out = train("env=math", "model=tiny", "trainer.steps=3", f"trainer.output_dir={tmp_path}",
                f"model.cache_dir={tmp_path / 'cache'}")
    elapsed = time.perf_counter() - tic
    assert out.returncode == 0, out.stderr[-3000:]
    assert elapsed < 120
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["rollout/drift_rate"] == 0.0 for r in rows)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ckpt = tmp_path / "checkpoints" / "step_000003"
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    tok = AutoTokenizer.from_pretrained(ckpt)
    assert model.config.model_type == "qwen3" and tok.chat_template
    assert list((tmp_path / "tensorboard").iterdir())


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    """NSR gives every failed sample A = -1, so even an untrained model has a real gradient."""
    common = ["env=math", "model=tiny", "algo=nsr", "trainer.lr=1e-3", "trainer.save_every=2",
              "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=12",
              f"model.cache_dir={tmp_path / 'cache'}"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert train(*common, "trainer.steps=4", f"trainer.output_dir={full}").returncode == 0
    assert train(*common, "trainer.steps=2", f"trainer.output_dir={part}").returncode == 0
    res = train(*common, "trainer.steps=4", "trainer.resume=true", f"trainer.output_dir={part}")
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = read_metrics(full / "metrics.jsonl"), read_metrics(part / "metrics.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert any(abs(r["loss/policy"]) > 0 for r in a)
    for ra, rb in zip(a, b):
        for key in ("loss/policy", "loss/grad_norm", "rollout/response_len", "rollout/reward_mean"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-7), (ra["step"], key)


def test_config_typo_is_a_clear_error(tmp_path):
    out = train("algo.rnak=3", f"trainer.output_dir={tmp_path}")
    assert out.returncode != 0 and "algo.rnak" in out.stderr
    out = train("algo=resrl", "algo.rank=many", f"trainer.output_dir={tmp_path}")
    assert out.returncode != 0 and "rank" in out.stderr


def test_sft_cli_learns_and_saves(tmp_path):
    """The README's warm start, short: expert chats of the math env, loss falls, checkpoints kept."""
    out = train("env=math", "model=tiny", "trainer.steps=40", "trainer.lr=3e-3", "trainer.batch_size=16",
                "trainer.save_every=20", "trainer.keep_checkpoints=1", f"trainer.output_dir={tmp_path}",
                f"model.cache_dir={tmp_path / 'cache'}", module="resrl_agents.sft")
    assert out.returncode == 0, out.stderr[-3000:]
    loss = [r["loss/sft"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert len(loss) == 40 and sum(loss[-5:]) / 5 < 0.5 * loss[0]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000040"]  # keep 1


def test_resrl_keeps_inspected_steps(tmp_path):
    # the untrained model fails every task: without skip_empty_updates=false no step would be scored
    out = train("env=math", "model=tiny", "algo=resrl", "trainer.steps=3", "trainer.inspect_every=2",
                "trainer.skip_empty_updates=false",
                "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=8",
                f"trainer.output_dir={tmp_path}", f"model.cache_dir={tmp_path / 'cache'}")
    assert out.returncode == 0, out.stderr[-3000:]
    kept = sorted(p.name for p in (tmp_path / "inspect").glob("step_*.json.gz"))
    assert kept == ["step_000001.json.gz", "step_000003.json.gz"]  # steps 1, 3 of 1..3 (every 2nd from the first)
    view = subprocess.run([sys.executable, "-m", "resrl_agents.inspect", str(tmp_path), "--all"], capture_output=True,
                          text=True, timeout=120)
    assert view.returncode == 0 and "step 3" in view.stdout and "group " in view.stdout, view.stderr
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert all("resrl/frac_in_span" in r and "resrl/degenerate_groups" in r for r in rows)


def test_replies_cut_at_max_new_tokens_count_as_truncated(tmp_path):
    """4 new tokens: most replies of the untrained model are cut. Math is one turn, so an episode is
    truncated exactly when its reply was cut; lengths, entropy and text samples are logged."""
    # every untrained reply fails: the update (and its loss/entropy) runs only without the skip
    out = train("env=math", "model=tiny", "trainer.steps=2", "rollout.max_new_tokens=4", "rollout.prompts_per_step=2",
                "rollout.group_size=4", "trainer.skip_empty_updates=false", f"trainer.output_dir={tmp_path}",
                f"model.cache_dir={tmp_path / 'cache'}")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = read_metrics(tmp_path / "metrics.jsonl")
    for r in rows:
        assert r["rollout/clipped_frac"] > 0.5 and r["rollout/truncated"] == r["rollout/clipped_frac"]
        assert 1 <= r["rollout/completion_len_min"] <= r["rollout/completion_len_mean"] <= r["rollout/completion_len_max"] == 4
        assert 0.0 <= r["rollout/zero_spread_groups"] <= 1.0 and r["loss/entropy"] > 0.5  # near-uniform untrained model
    samples = read_metrics(tmp_path / "samples.jsonl")
    assert [s["step"] for s in samples] == [1, 1, 2, 2]
    assert all(s["messages"][-1]["role"] == "assistant" and s["clipped_turns"] in (0, 1) for s in samples)


def test_resume_after_kill_logs_every_step_once(tmp_path):
    """kill -9 after step 3 was logged but before its checkpoint (step 2 is the newest): the
    resumed run drops the stale step-3 records (jsonl and TensorBoard) instead of repeating them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cache = f"model.cache_dir={tmp_path / 'cache'}"
    assert train("env=math", "trainer.steps=1", f"trainer.output_dir={tmp_path / 'warm'}", cache).returncode == 0
    run = tmp_path / "run"
    common = ["env=math", "model=tiny", "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=8",
              "trainer.save_every=2", f"trainer.output_dir={run}", cache]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "resrl_agents.train", "trainer.num_threads=1", "trainer.progress=false", *common,
           "trainer.steps=40"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "metrics.jsonl").exists() and len(read_metrics(run / "metrics.jsonl")) >= 3:
            proc.kill()  # SIGKILL: no cleanup runs
            break
        time.sleep(0.01)
    proc.wait()
    logged = [r["step"] for r in read_metrics(run / "metrics.jsonl")]
    newest = int(sorted((run / "checkpoints").glob("step_*"))[-1].name[5:])
    assert max(logged) > newest, (logged, newest)  # the kill left records past the checkpoint
    res = train(*common, "trainer.steps=6", "trainer.resume=true")
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    assert sorted({s["step"] for s in read_metrics(run / "samples.jsonl")}) == [1, 2, 3, 4, 5, 6]
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("rollout/reward_mean")] == [1, 2, 3, 4, 5, 6]
