"""``benchmarks/agent_learning.py --quick``: the real CLIs end to end at a tiny size (two SFT
stages, GRPO and ResRL, evals on both splits, PNG, markdown section with notes), then a second
invocation that finds every stage done."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "agent_learning.py"


def load_script():
    spec = importlib.util.spec_from_file_location("agent_learning", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_write_section_keeps_other_sections(tmp_path):
    al = load_script()
    results = tmp_path / "results.md"
    results.write_text("# Results\n\nother section\n", encoding="utf-8")
    al.write_section(results, "first")
    al.write_section(results, "second")
    text = results.read_text(encoding="utf-8")
    assert text.startswith("# Results\n\nother section\n")
    assert text.count(al.START) == 1 and "second" in text and "first" not in text
    al.write_section(tmp_path / "new.md", "x")  # absent file: created with the block
    assert f"{al.START}\nx\n{al.END}" in (tmp_path / "new.md").read_text(encoding="utf-8")


def test_generated_tasks_are_distinct_and_answered_by_their_expert_calls():
    """``--tasks-per-family``: more tasks over the bundled catalog, no question twice (a held-out
    task never repeats a training one), each answer what the expert's calls give."""
    from resrl_agents.envs.tool_use.examples import warehouse

    al = load_script()
    rows = al.generated_tasks(50)
    questions = [r["question"] for r in rows]
    assert len(set(questions)) == len(questions) > 200
    restock = [r for r in rows if r["family"] == "restock"]
    assert len(restock) >= 45
    for r in restock[:20]:
        (stock,), (calc,) = r["calls"]
        expr = calc["arguments"]["expression"]
        target, have = (int(x) for x in expr.split(" - "))
        assert warehouse.get_stock(**stock["arguments"]) == have and str(target) in r["question"]
        assert str(warehouse.calculator(expr)) == r["answer"]


@pytest.mark.slow
def test_quick_run_writes_curves_and_resumes(tmp_path):
    out, results, png = tmp_path / "runs", tmp_path / "results.md", tmp_path / "curves.png"
    notes = tmp_path / "notes.md"
    notes.write_text("Tried by hand: nothing yet.\n", encoding="utf-8")
    cmd = [sys.executable, str(SCRIPT), "--quick", "--seeds", "0", "--out", str(out), "--results", str(results),
           "--png", str(png), "--sft2-steps", "1", "--sft-start", "1", "--notes", str(notes),
           "--rl-overrides", "algo.lam=1.0 trainer.skip_empty_updates=false"]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert first.returncode == 0, first.stdout + first.stderr
    text = results.read_text(encoding="utf-8")
    body = text.split("<!-- agent-learning:start -->")[1].split("<!-- agent-learning:end -->")[0]
    assert "| grpo |" in body and "| resrl |" in body and "--quick" in body and "Success on held-out tasks" in body
    assert "resrl/frac_in_span" in body and png.stat().st_size > 1000 and "Tried by hand: nothing yet." in body
    assert (out / "sft2" / "checkpoints" / "step_000001").is_dir()  # the second SFT stage, RL's start
    assert "sft/checkpoints/step_000002" in (out / "logs" / "sft2.log").read_text(encoding="utf-8").splitlines()[0]
    command = (out / "logs" / "resrl_s0.log").read_text(encoding="utf-8").splitlines()[0]
    assert command.endswith("algo.lam=1.0 trainer.skip_empty_updates=false")  # --rl-overrides come last
    for run in ("grpo_s0", "resrl_s0"):
        assert (out / "rl" / run / "checkpoints" / "step_000002").is_dir()
        for split in ("test", "train"):
            assert (out / "eval" / f"{run}_{split}" / "report.json").is_file()
    logs = {p.name: p.stat().st_mtime_ns for p in (out / "logs").iterdir()}
    assert set(logs) == {"sft.log", "sft2.log", "grpo_s0.log", "resrl_s0.log", "eval_grpo_s0_test.log",
                         "eval_grpo_s0_train.log", "eval_resrl_s0_test.log", "eval_resrl_s0_train.log"}
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "logs").iterdir()} == logs  # no stage ran again
    assert again.stdout == first.stdout  # the same curves, read back from the cached reports
