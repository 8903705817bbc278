"""EnvPool: envs in worker processes give the same episodes as in-process envs, in parallel."""

from __future__ import annotations

import os
import signal

import pytest

from resrl_agents.rollout.agent_loop import rollout
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.config.errors import ConfigError
from resrl_agents.rollout.env_pool import EnvPool, EnvWorkerDied, make_envs
from resrl_agents.rollout.policy import HFPolicy

ENV, KW = "resrl_agents/WebShop-v0", {"max_turns": 3}


@pytest.fixture(scope="module")
def pool():
    p = EnvPool(ENV, KW, 4, workers=2)
    yield p
    p.close()


def _episodes(tiny, envs, n=4):
    model, tok = tiny
    return rollout(envs, [0, 0, 1, 1][:n], [0, 0, 1, 1][:n], HFPolicy(model, tok), ChatRenderer(tok), history="full",
                   max_new_tokens=12, max_context_tokens=4096, temperature=1.0, top_p=1.0, seed=7)


def test_pool_episodes_equal_in_process_episodes(tiny, pool):
    local = make_envs(ENV, KW, 4)
    try:
        a, b = _episodes(tiny, pool), _episodes(tiny, local)
    finally:
        for e in local:
            e.close()
    assert [t.token_ids() for t in a] == [t.token_ids() for t in b]
    assert [(t.reward, t.num_turns, t.truncated, t.messages) for t in a] == [
        (t.reward, t.num_turns, t.truncated, t.messages) for t in b]
    assert pool.max_turns == [3] * 4


def test_pool_runs_fewer_episodes_than_envs(tiny, pool):
    assert len(_episodes(tiny, pool, n=2)) == 2


def test_env_errors_come_back_as_exceptions():
    from gymnasium.error import ResetNeeded

    p = EnvPool(ENV, KW, 1, workers=1)
    try:
        (err,) = p.step_many([(0, "search[red shoes]")])  # step before reset: the env raises
        assert isinstance(err, ResetNeeded)
        ((obs, info),) = p.reset_many([(0, 0, None)])  # the worker is still serving
        assert obs and info["task_id"]
    finally:
        p.close()


def test_a_dead_worker_fails_its_envs_not_the_run(tiny):
    p = EnvPool(ENV, KW, 2, workers=2)
    try:
        p.reset_many([(0, 0, None), (1, 0, None)])
        os.kill(p._procs[1].pid, signal.SIGKILL)
        p._procs[1].join(timeout=10)
        ok, dead = p.step_many([(0, "search[red shoes]"), (1, "search[red shoes]")])
        assert isinstance(ok, tuple) and isinstance(dead, EnvWorkerDied)
    finally:
        p.close()


@pytest.mark.parametrize("workers", [0, 1])
def test_env_kwargs_that_do_not_build_are_a_config_error(workers):
    """In-process or in a worker, the caller gets one ConfigError naming env.kwargs (not a dead
    worker, not a bare ModuleNotFoundError)."""
    with pytest.raises(ConfigError, match=r"env.kwargs.*tools=\['nope'\]: 'nope' does not import"):
        EnvPool("resrl_agents/ToolUse-v0", {"tools": ["nope"]}, 2, workers) if workers else \
            make_envs("resrl_agents/ToolUse-v0", {"tools": ["nope"]}, 2)
