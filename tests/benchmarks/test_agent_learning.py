"""``benchmarks/agent_learning.py --quick``: the real CLIs end to end at a tiny size (SFT, GRPO and
ResRL, evals, PNG, markdown section), then a second invocation that finds every stage done."""

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


@pytest.mark.slow
def test_quick_run_writes_curves_and_resumes(tmp_path):
    out, results, png = tmp_path / "runs", tmp_path / "results.md", tmp_path / "curves.png"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--seeds", "0", "--out", str(out), "--results", str(results),
           "--png", str(png)]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert first.returncode == 0, first.stdout + first.stderr
    text = results.read_text(encoding="utf-8")
    body = text.split("<!-- agent-learning:start -->")[1].split("<!-- agent-learning:end -->")[0]
    assert "| grpo |" in body and "| resrl |" in body and "--quick" in body
    assert "resrl/frac_in_span" in body and png.stat().st_size > 1000
    for run in ("grpo_s0", "resrl_s0"):
        assert (out / "rl" / run / "checkpoints" / "step_000002").is_dir()
        assert (out / "eval" / run / "report.json").is_file()
    logs = {p.name: p.stat().st_mtime_ns for p in (out / "logs").iterdir()}
    assert set(logs) == {"sft.log", "eval_sft.log", "grpo_s0.log", "resrl_s0.log", "eval_grpo_s0.log", "eval_resrl_s0.log"}
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "logs").iterdir()} == logs  # no stage ran again
    assert again.stdout.splitlines()[1:3] == first.stdout.splitlines()[1:3]  # the same curves, read back
