"""``check_env``: the contract test every text env passes (see ``envs/base.py``).

Checks seeded determinism (two resets with one seed, in one env and in a fresh copy, give the
same obs and info, and the same scripted actions give the same transitions), return types, the
:class:`ResetInfo` / :class:`StepInfo` keys, the turn limit (an episode that is not terminated by
``max_turns`` is truncated exactly there, never later) and that ``step`` after the end raises
``gymnasium.error.ResetNeeded``. A violation raises ``AssertionError`` naming the env and rule.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium as gym
from gymnasium.error import ResetNeeded

RESET_KEYS: dict[str, type] = {"task_id": str, "task": str, "family": str}
STEP_KEYS: dict[str, type] = {"won": bool, "invalid": bool}
OPTIONAL_KEYS: dict[str, type] = {"system_prompt": str, "admissible_actions": list, "error": str,
                                  "prompt_messages": list, "reward_components": dict}

Transition = tuple[str, float, bool, bool, bool, bool]  # obs, reward, terminated, truncated, won, invalid


def _name(env: gym.Env) -> str:
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


def _check_info(name: str, where: str, info: Any, required: dict[str, type]) -> None:
    assert isinstance(info, dict), f"{name}: {where} info must be a dict, got {type(info).__name__}"
    for key, typ in {**required, **OPTIONAL_KEYS}.items():
        if key not in info:
            assert key not in required, f"{name}: {where} info lacks required key {key!r}"
            continue
        assert isinstance(info[key], typ), (
            f"{name}: {where} info[{key!r}] must be {typ.__name__}, got {type(info[key]).__name__}")
    if "admissible_actions" in info:
        assert all(isinstance(a, str) for a in info["admissible_actions"]), (
            f"{name}: {where} info['admissible_actions'] must be a list of str")


def _check_obs(name: str, where: str, env: gym.Env, obs: Any) -> None:
    assert isinstance(obs, str), f"{name}: {where} obs must be str, got {type(obs).__name__}"
    assert env.observation_space.contains(obs), f"{name}: {where} obs is not in observation_space"


def _reset(env: gym.Env, seed: int) -> tuple[str, dict[str, Any]]:
    name = _name(env)
    result = env.reset(seed=seed)
    assert isinstance(result, tuple) and len(result) == 2, f"{name}: reset must return (obs, info)"
    obs, info = result
    _check_obs(name, "reset", env, obs)
    _check_info(name, "reset", info, RESET_KEYS)
    return obs, info


def _play(env: gym.Env, actions: Sequence[str], max_turns: int) -> list[Transition]:
    """Step with ``actions`` (cycled) until the episode ends; check each step and the turn limit."""
    name, out = _name(env), []
    for turn in range(1, max_turns + 1):
        result = env.step(actions[(turn - 1) % len(actions)])
        assert isinstance(result, tuple) and len(result) == 5, (
            f"{name}: step must return (obs, reward, terminated, truncated, info)")
        obs, reward, terminated, truncated, info = result
        _check_obs(name, f"step {turn}", env, obs)
        assert isinstance(reward, float), f"{name}: reward must be float, got {type(reward).__name__}"
        assert isinstance(terminated, bool) and isinstance(truncated, bool), (
            f"{name}: terminated/truncated must be bool, got "
            f"{type(terminated).__name__}/{type(truncated).__name__}")
        _check_info(name, f"step {turn}", info, STEP_KEYS)
        out.append((obs, reward, terminated, truncated, info["won"], info["invalid"]))
        if turn < max_turns:
            assert not truncated, f"{name}: truncated at turn {turn} before max_turns={max_turns}"
        elif not terminated:
            assert truncated, (f"{name}: episode neither terminated nor truncated at "
                               f"max_turns={max_turns}; it must be truncated there")
        if terminated or truncated:
            break
    try:
        env.step(actions[0])
    except ResetNeeded:
        return out
    raise AssertionError(f"{name}: step after the episode ended must raise gymnasium.error.ResetNeeded")


def check_env(env_factory: Callable[..., gym.Env], *, seeds: Sequence[int] = (0, 1),
              actions: Sequence[str]) -> None:
    """Run the contract checks on two envs from ``env_factory``; ``actions`` is a scripted policy.

    The twin is built as ``env_factory(**env.unwrapped.shared_kwargs())``, the way a rollout builds
    G copies (``functools.partial(gymnasium.make, env_id, **kwargs)`` is a valid factory), so
    sharing resources must not break determinism. ``actions`` are played in order and cycled until
    the episode ends, so a script that never solves the task tests truncation at ``max_turns``.
    """
    if not actions:
        raise ValueError("check_env needs at least one scripted action")
    env = env_factory()
    shared = env.unwrapped.shared_kwargs() if hasattr(env.unwrapped, "shared_kwargs") else {}
    twin = env_factory(**shared)
    name = _name(env)
    try:
        max_turns = getattr(env.unwrapped, "max_turns", None)
        assert isinstance(max_turns, int) and max_turns >= 1, (
            f"{name}: env must define an int max_turns >= 1, got {max_turns!r}")
        for seed in seeds:
            obs, info = _reset(env, seed)
            again = _reset(env, seed)
            assert again == (obs, info), f"{name}: two resets with seed={seed} differ in one env"
            assert _reset(twin, seed) == (obs, info), (
                f"{name}: reset(seed={seed}) differs between two copies of the env")
            run, twin_run = _play(env, actions, max_turns), _play(twin, actions, max_turns)
            assert run == twin_run, (
                f"{name}: the same actions after reset(seed={seed}) gave different transitions:\n"
                f"{run}\nvs\n{twin_run}")
            by_id = twin.reset(seed=seed + 1, options={"task_id": info["task_id"]})
            assert by_id[1]["task_id"] == info["task_id"], (
                f"{name}: reset(options={{'task_id': ...}}) did not select that task")
    finally:
        twin.close()  # the twin may borrow from env: close it first
        env.close()
