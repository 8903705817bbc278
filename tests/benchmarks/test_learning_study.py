"""The learning study end to end at its tiny size (SFT, a base and a GRPO run, validation, final
evals, table and plots), and that a rerun reuses every finished run and replaces its section."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "learning_study.py"


def _study():
    spec = importlib.util.spec_from_file_location("learning_study", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_variants_are_resrl_override_sets_with_the_study_rank():
    study = _study()
    algos = study.algorithms(["grpo", "resrl"], ["resrl_own:algo.hidden_position=own algo.w_min=0.2"], study.SIZES["default"])
    assert algos == {"grpo": ["algo=grpo"], "resrl": ["algo=resrl", "algo.rank=4"],
                     "resrl_own": ["algo=resrl", "algo.hidden_position=own", "algo.w_min=0.2", "algo.rank=4"]}
    assert list(study.algorithms(["all"], [], study.SIZES["default"])) == list(study.ALGOS) + list(study.RESRL_VARIANTS)
    with pytest.raises(SystemExit, match="NAME:OVERRIDE"):
        study.algorithms(["grpo"], ["no_colon"], study.SIZES["default"])
    with pytest.raises(SystemExit, match="unknown"):
        study.algorithms(["ppo"], [], study.SIZES["default"])


def test_tiny_study_end_to_end_and_resumes(tmp_path):
    results = tmp_path / "results.md"
    results.write_text("# Results\n\nkept text\n")
    cmd = [sys.executable, str(SCRIPT), "--size", "tiny", "--seeds", "1", "--steps", "1", "--algos", "base,grpo",
           "--out", str(tmp_path / "study"), "--results", str(results)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    run = tmp_path / "study" / "runs" / "grpo" / "seed0"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val/avg@1_greedy" in r] == [0, 1]  # baseline and the last step
    final = json.loads((run / "final_eval.json").read_text())
    assert sorted(map(int, final["pass"])) == [1, 2, 3, 4] and 0.0 <= final["avg1_greedy"] <= 1.0
    assert json.loads((tmp_path / "study" / "runs" / "base" / "seed0" / "final_eval.json").read_text())["pass"]
    text = results.read_text()
    assert "kept text" in text and "| base | 1 |" in text and "| grpo | 1 |" in text and "--size tiny" in text
    assert (tmp_path / "learning_study_pass_at_k.png").stat().st_size > 0
    assert (tmp_path / "learning_study_validation.png").stat().st_size > 0
    stamp = (run / "metrics.jsonl").stat().st_mtime_ns
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (run / "metrics.jsonl").stat().st_mtime_ns == stamp  # nothing retrained
    assert results.read_text().count("<!-- learning_study:begin -->") == 1 and "kept text" in results.read_text()
