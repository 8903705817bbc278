"""``pick_task_index``: the one reset-option task picker of math, code, BFCL and ToolUse envs."""

from __future__ import annotations

import numpy as np
import pytest

from resrl_agents.envs.base import pick_task_index

IDS = {"a": 0, "b": 1, "c": 2}


def _pick(options, seed=0):
    return pick_task_index(options, len(IDS), np.random.default_rng(seed), IDS.get)


def test_explicit_task_id_and_index():
    assert _pick({"task_id": "b"}) == 1
    assert _pick({"index": 2}) == 2
    assert _pick({"index": "0"}) == 0  # e.g. a CLI string


def test_seeded_draw_is_deterministic_and_covers_all_tasks():
    assert _pick(None, seed=7) == _pick({}, seed=7)
    assert {_pick(None, seed=s) for s in range(50)} == {0, 1, 2}


def test_bad_options_fail_loudly():
    with pytest.raises(ValueError, match=r"unknown reset options \['taskid'\]"):
        _pick({"taskid": "a"})
    with pytest.raises(KeyError, match="no task 'z'"):
        _pick({"task_id": "z"})
    with pytest.raises(IndexError, match=r"task index 3 out of range \[0, 3\)"):
        _pick({"index": 3})
    with pytest.raises(IndexError):
        _pick({"index": -1})


def test_a_lookup_may_raise_its_own_key_error():
    def index_of(task_id: str) -> int:
        raise KeyError(f"unknown task_id {task_id!r}")

    with pytest.raises(KeyError, match="unknown task_id 'q'"):
        pick_task_index({"task_id": "q"}, 3, np.random.default_rng(0), index_of)
