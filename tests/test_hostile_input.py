"""Hostile input (issue 14): what a model emits or a person types never stalls or stops a run, and
every mistake gets a short message that names its cause.

* the ReAct parser is linear in its input, and envs refuse over-long answers unparsed;
* the play UI, driven by scripted input, survives each crash (unwritable path, bad seed, the
  endpoint going down) with the episode kept;
* each CLI mistake ends in a few lines on stderr naming the config key.
"""

from __future__ import annotations

import time

import gymnasium as gym
import pytest

import resrl_agents.envs  # noqa: F401  (registers the env ids)
from resrl_agents.tools.react import MAX_ANSWER_CHARS, _blocks, parse_react

OPEN_TAGS = "<think>" * (100_000 // len("<think>")) + "<action>look</action>"  # 100 KB


# ---------------------------------------------------------------------------------------- ReAct

def _best_of_3(fn) -> float:
    times = []
    for _ in range(3):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return min(times)


def test_react_scan_of_100kb_of_open_tags_is_fast():
    """The lazy regexes took 4.6 s on 10,000 ``<think>`` tags; the one-pass scan is linear."""
    assert _blocks(OPEN_TAGS)["action"] == ["look"]
    small, big = _best_of_3(lambda: _blocks(OPEN_TAGS)), _best_of_3(lambda: _blocks(OPEN_TAGS * 10))
    assert small < 0.5, f"{small:.3f} s for 100 KB"
    assert big < 30 * small + 0.05, f"100 KB: {small:.4f} s, 1 MB: {big:.4f} s (not linear)"


def test_envs_refuse_over_long_answers_quickly():
    env = gym.make("resrl_agents/ALFWorld-v0", split="valid", max_turns=5)
    try:
        env.reset(seed=0)
        answer = "<think>" * (MAX_ANSWER_CHARS // 7 + 1) + "<action>look</action>"
        tic = time.perf_counter()
        obs, reward, terminated, truncated, info = env.step(answer)
        assert time.perf_counter() - tic < 0.5
        assert info["invalid"] and "at most" in obs and not terminated
        _, _, _, _, info = env.step("<think>" * 1000 + "<action>look</action>")  # long but under the cap
        assert not info["invalid"]
    finally:
        env.close()
    assert parse_react(OPEN_TAGS).error.startswith("the answer is")
