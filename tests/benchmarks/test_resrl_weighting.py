"""The weighting benchmark at a tiny size: ``--batched`` times both paths in one run and prints
their ratio, and which groups take the exact SVD."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_batched_mode_prints_both_times_and_their_ratio():
    cmd = [sys.executable, str(REPO / "benchmarks" / "resrl_weighting.py"), "--device", "cpu", "--batched",
           "--groups", "3", "--tokens", "40", "--spread", "0.5", "--hidden", "16", "--rank", "4", "--repeats", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=True).stdout
    sizes = r"(2\d|3\d|40)\.\.(2\d|3\d|40)"  # 40 tokens less up to half
    assert re.search(rf"3 groups x {sizes} tokens, H=16, rank 4: 3 of 3 groups take the exact SVD", out)
    looped = float(re.search(r"per group, looped: ([\d.]+) ms", out).group(1))
    batched, ratio = map(float, re.search(r"per group, batched: ([\d.]+) ms; batched/looped: ([\d.]+)", out).groups())
    assert looped > 0 and batched > 0 and abs(ratio - batched / looped) < 0.01 + 0.01 * ratio
    assert "linalg_svd" in out  # the profile of one batched pass
