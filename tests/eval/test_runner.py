"""The eval runner and CLI: n samples per task through the training loop, chunking, seeds, and a
one-command comparison of two checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from resrl_agents.config.eval_schema import EvalConfig
from resrl_agents.config.schema import EnvConfig
from resrl_agents.eval.runner import run_eval, run_labels

REPO = Path(__file__).resolve().parents[2]


def _cfg(tiny_cfg, out: Path, **over) -> EvalConfig:
    env = EnvConfig(name="math", id="resrl_agents/Math-v0", kwargs={"source": "arithmetic", "split": "train"},
                    eval_kwargs={"split": "test"})
    base = dict(env=env, model=tiny_cfg, n=3, num_tasks=2, seed=4, temperature=1.0, top_p=1.0, max_new_tokens=8,
                batch_size=4, device="cpu", output_dir=str(out), plots=False)
    return EvalConfig(**(base | over))


def _episodes(out: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (out / f"episodes_{name}.jsonl").read_text().splitlines()]


def test_n_samples_per_task_in_chunks_are_reproducible(tiny_cfg, tmp_path):
    report = run_eval(_cfg(tiny_cfg, tmp_path / "a"))  # 2 tasks x 3 samples in chunks of 4 + 2
    run_eval(_cfg(tiny_cfg, tmp_path / "b"))
    [run] = report["runs"]
    assert run["num_tasks"] == 2 and run["num_episodes"] == 6 and run["n"] == 3
    a, b = _episodes(tmp_path / "a", "tiny"), _episodes(tmp_path / "b", "tiny")
    assert [e["actions"] for e in a] == [e["actions"] for e in b]  # same seeds -> same episodes
    assert [e["task"] for e in a] == [0, 0, 0, 1, 1, 1] and [e["seed"] for e in a] == [4, 4, 4, 5, 5, 5]
    assert len({e["actions"][0] for e in a}) > 1  # samples of a task differ
    assert [t["n"] for t in run["tasks"]] == [3, 3]
    assert {e["task_id"] for e in a} == {t["task_id"] for t in run["tasks"]}
    assert sum(e["won"] for e in a) == sum(t["successes"] for t in run["tasks"])


def test_env_workers_give_the_same_episodes(tiny_cfg, tmp_path):
    """Envs in 2 worker processes (the last chunk uses part of the pool): same episodes as in-process."""
    run_eval(_cfg(tiny_cfg, tmp_path / "local"))
    report = run_eval(_cfg(tiny_cfg, tmp_path / "pool", env_workers=2))
    local, pool = _episodes(tmp_path / "local", "tiny"), _episodes(tmp_path / "pool", "tiny")
    assert [(e["seed"], e["actions"], e["reward"]) for e in pool] == [(e["seed"], e["actions"], e["reward"]) for e in local]
    assert report["runs"][0]["num_episodes"] == 6


def test_run_labels():
    cfg = EvalConfig(checkpoints=["runs/a/step_10", "runs/a/step_20"])
    assert run_labels(cfg) == [("step_10", "runs/a/step_10"), ("step_20", "runs/a/step_20")]
    cfg = EvalConfig(checkpoints=["runs/a/step_10", "runs/b/step_10"])
    assert [lab for lab, _ in run_labels(cfg)] == ["a/step_10", "b/step_10"]
    cfg = EvalConfig()
    cfg.policy.backend, cfg.policy.model = "openai", "served-name"
    assert run_labels(cfg) == [("served-name", None)]


def test_cli_compares_two_checkpoints_in_one_report(tiny, tiny_cfg, tmp_path):
    model, tok = tiny
    ckpts = [tmp_path / "ckpt" / "base", tmp_path / "ckpt" / "noisy"]
    model.save_pretrained(ckpts[0])
    tok.save_pretrained(ckpts[0])
    gen = torch.Generator().manual_seed(0)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in model.state_dict().items()}
    model.save_pretrained(ckpts[1], state_dict=state)
    tok.save_pretrained(ckpts[1])
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "resrl_agents.eval", "env=math", f"checkpoints=[{ckpts[0]},{ckpts[1]}]", "n=2",
           "num_tasks=2", "max_new_tokens=6", "batch_size=4", "device=cpu", "num_threads=1", f"output_dir={out}",
           f"model.cache_dir={tiny_cfg.cache_dir}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["base", "noisy"]
    assert [r["checkpoint"] for r in report["runs"]] == [str(c) for c in ckpts]
    assert report["env"]["kwargs"]["split"] == "test"  # eval_kwargs applied
    assert all(r["num_episodes"] == 4 and list(r["pass_at_k"]) == ["1", "2"] for r in report["runs"])
    for name in ("pass_at_k.png", "family_success.png", "episodes_base.jsonl", "episodes_noisy.jsonl"):
        assert (out / name).stat().st_size > 0
    assert _episodes(out, "base") != _episodes(out, "noisy")  # two different policies were run
    assert "avg@2" in proc.stdout and "noisy" in proc.stdout
    assert f"report: {out / 'report.json'}" in proc.stdout and str(out / "family_success.png") in proc.stdout
    assert "env.eval_kwargs.split=test overrides env.kwargs.split=train" in proc.stdout  # in the notes
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                           env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert again.returncode == 2 and "holds the report of an earlier eval" in again.stderr  # never overwritten
    assert json.loads((out / "report.json").read_text()) == report


def test_seeds_that_draw_the_same_task_count_it_once(tiny_cfg, tmp_path):
    """12 task seeds on ALFWorld's valid split (fewer games): each game is one task with all its
    episodes, and the report says so."""
    env = EnvConfig(name="alfworld", id="resrl_agents/ALFWorld-v0", kwargs={"split": "train"},
                    eval_kwargs={"split": "valid", "max_turns": 1})
    report = run_eval(_cfg(tiny_cfg, tmp_path, env=env, n=1, num_tasks=12, max_new_tokens=4, batch_size=12))
    [run] = report["runs"]
    episodes = _episodes(tmp_path, "tiny")
    games = {e["task_id"] for e in episodes}
    assert len(games) < 12 and run["num_tasks"] == len(games) and run["num_episodes"] == 12
    assert sorted(t["n"] for t in run["tasks"]) == sorted(sum(e["task_id"] == g for e in episodes) for g in games)
    assert any(f"12 task seeds drew only {len(games)} distinct tasks" in n for n in report["notes"])
    assert "env.eval_kwargs.split=valid overrides env.kwargs.split=train for evaluation" in report["notes"]
