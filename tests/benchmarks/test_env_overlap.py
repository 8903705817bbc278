"""benchmarks/env_overlap.py: its one-worker overlap model worked by hand, its admissible-action
substitution on real ALFWorld envs, and a tiny end-to-end run that prints both result lines."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "env_overlap.py"


def _bench():
    spec = importlib.util.spec_from_file_location("env_overlap", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_one_worker_steps_rows_as_they_end():
    bench = _bench()
    # decode from t=0 to t=10; rows end at 2, 10 (the last step), 5; their steps take 1, 3, 4 s.
    # The worker: row 0 at 2 -> free at 3; row 2 at 5 -> 9; row 1 at 10 -> 13: 3 s left after
    # the decode, so 8 - 3 = 5 s of env time hidden.
    turn = {"start": 0.0, "end": 10.0, "ended": [2.0, 10.0, 5.0], "each": [1.0, 3.0, 4.0]}
    assert bench.left_after_decode(turn) == 3.0
    # a backlog: both rows end at 1 with 6 s steps -> free at 7, then 13: 3 s left
    turn = {"start": 0.0, "end": 10.0, "ended": [1.0, 1.0], "each": [6.0, 6.0]}
    assert bench.left_after_decode(turn) == 3.0
    # steps done before the decode ends leave nothing to wait for
    turn = {"start": 0.0, "end": 10.0, "ended": [1.0], "each": [2.0]}
    assert bench.left_after_decode(turn) == 0.0


def test_admissible_mode_plays_legal_commands():
    bench = _bench()
    from resrl_agents.rollout.env_pool import LocalEnvs, make_envs

    turns = [{}]
    envs = bench.TraceEnvs(LocalEnvs(make_envs(bench.ENV_ID, {"max_turns": 3}, 2)), turns, admissible=True, seed=0)
    envs.reset_many([(0, 0, None), (1, 1, None)])
    out = envs.step_many([(0, "gibberish"), (1, "<action>fly away</action>")])
    assert [r[4]["invalid"] for r in out] == [False, False]  # the engine ran a legal command
    assert turns[0]["env"] > 0 and len(turns[0]["each"]) == 2
    raw = bench.TraceEnvs(envs.inner, turns, admissible=False, seed=0)
    assert raw.step_many([(0, "gibberish")])[0][4]["invalid"] is True


def test_tiny_run_prints_the_bounds():
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(SCRIPT), "--groups", "1", "--group-size", "2", "--max-turns", "2", "--max-new", "4",
           "--repeats", "1", "--threads", "1", "--env-workers", "1", "--actions", "admissible"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True).stdout
    share = re.search(r"env-step share of rollout wall time: in-process ([\d.]+), pool ([\d.]+)", out)
    bound = re.search(r"ceiling ([\d.]+), one worker ([\d.]+), pool ceiling ([\d.]+)", out)
    assert share and bound, out
    assert all(0 < float(x) < 1 for x in share.groups())  # legal commands run the engine: env time > 0
    assert all(0 <= float(x) <= 1 for x in bound.groups())
    assert float(bound[2]) <= float(bound[1])  # the one-worker model never beats the ceiling
