"""The text-env contract every env in this package follows.

A text env is a ``gymnasium.Env[str, str]``: observations and actions are strings.

* ``reset(seed=None, options=None) -> (obs, info)``. The same ``seed`` always yields the same task
  and the same first observation, so G copies reset with one seed form a GRPO group.
  ``options={"task_id": ...}`` or ``{"index": i}`` picks a task explicitly (envs with a task
  list use :func:`pick_task_index`). ``info`` carries :class:`ResetInfo` keys.
* ``step(action) -> (obs, reward, terminated, truncated, info)``. ``action`` is the model's raw
  text; the env parses it with the shared parsers (``resrl_agents.tools.parsers``) so training,
  eval and serving agree. Bad format is never an exception: it is an observation, ``info["invalid"]
  = True`` and an optional penalty. Solving/failing the task is ``terminated``; hitting
  ``max_turns`` is ``truncated``. ``step`` before ``reset`` or after the episode ended raises
  ``gymnasium.error.ResetNeeded``.
* Every env passes ``resrl_agents.envs.checker.check_env``; its module exposes
  ``SCRIPTED_ACTIONS`` (action scripts the checker test plays) and may expose
  ``check_kwargs(shared_data) -> dict | None`` (extra make kwargs; None = skip, data missing).

Envs import neither torch nor transformers (checked by a test).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, TypedDict

import gymnasium as gym
import numpy as np

MAX_TEXT = 1 << 20


class ResetInfo(TypedDict, total=False):
    task_id: str  # stable id of the task (same seed -> same id)
    task: str  # the task text shown to the agent
    family: str  # task family / category, for per-family metrics
    admissible_actions: list[str]  # present when the env enumerates legal actions
    system_prompt: str  # env-specific instructions (answer format); rendered as the system message
    prompt_messages: list[dict]  # the whole opening conversation (chat-format prompts); replaces system + obs


class StepInfo(TypedDict, total=False):
    won: bool  # task solved
    invalid: bool  # the action could not be parsed or was not admissible
    admissible_actions: list[str]
    error: str  # a crash inside the env, recorded instead of raised
    reward_components: dict[str, float]  # named parts of the reward (logged as reward/<name>)


class AnyText(gym.spaces.Text):
    """A Text space that contains every ``str`` up to ``max_length`` characters.

    Gymnasium's ``Text`` only contains strings over its charset (alphanumeric by default), so
    "What is 37 + 45?" would fail ``contains`` and the passive env checker would warn on every
    step. Sampling still draws from the alphanumeric charset.
    """

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"AnyText({self.min_length}, {self.max_length})"


def pick_task_index(options: Mapping[str, Any] | None, n: int, np_random: np.random.Generator,
                    lookup_id: Callable[[str], int | None]) -> int:
    """The task index ``reset(options=...)`` asks for, among ``n`` tasks.

    ``{"task_id": id}`` -> ``lookup_id(id)`` (None, or its own KeyError, for an unknown id);
    ``{"index": i}`` -> ``i`` with ``0 <= i < n``; no options -> a draw from ``np_random`` (the
    env's seeded RNG, so one seed always picks one task). Any other key is a ValueError, so that
    a misspelled option fails loudly instead of silently picking a random task.
    """
    options = options or {}
    unknown = set(options) - {"task_id", "index"}
    if unknown:
        raise ValueError(f"unknown reset options {sorted(unknown)}; use 'task_id' or 'index'")
    if "task_id" in options:
        index = lookup_id(options["task_id"])
        if index is None:
            raise KeyError(f"no task {options['task_id']!r} in this env's split")
        return index
    if "index" in options:
        index = int(options["index"])
        if not 0 <= index < n:
            raise IndexError(f"task index {index} out of range [0, {n})")
        return index
    return int(np_random.integers(n))


class TextEnv(gym.Env[str, str]):
    """Base for text envs: fixes the spaces, ``max_turns`` and the ``shared_kwargs`` hook."""

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}
    max_turns: int = 1

    def __init__(self) -> None:
        self.observation_space = AnyText(max_length=MAX_TEXT, min_length=0)
        self.action_space = AnyText(max_length=MAX_TEXT, min_length=0)

    def shared_kwargs(self) -> dict[str, Any]:
        """Constructor kwargs that make another copy share this env's heavy resources.

        A rollout that builds G copies of one env does ``first = gymnasium.make(id, **kw)`` and then
        ``gymnasium.make(id, **kw, **first.unwrapped.shared_kwargs())`` for the others, so e.g. one
        verifier process serves the whole group. No module-level state is involved: the sharing is
        explicit and ends with the objects. Default: nothing to share.
        """
        return {}

    def expert_action(self) -> str | None:
        """The action an expert would answer now (the whole model answer text), or None when the
        env has no expert. Used to build SFT warm-start data and scripted tests."""
        return None
