"""``resrl_agents/ALFWorld-v0``: ALFWorld's household text games on the text-env contract."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from gymnasium.error import ResetNeeded

from resrl_agents.envs.alfworld.data import GameSpec, find_games, games_root, load_walkthrough
from resrl_agents.envs.alfworld.engine import AlfredEngine, EngineState, EngineCache
from resrl_agents.envs.alfworld.expert import expert_answer, on_walkthrough
from resrl_agents.envs.alfworld.prompts import (NOT_ADMISSIBLE, SYSTEM_PROMPT, format_error,
                                                split_intro)
from resrl_agents.envs.base import ResetInfo, StepInfo, TextEnv
from resrl_agents.tools.react import parse_react

# Scripts the registry's check_env test plays: a legal no-op (never wins, so it tests truncation
# at max_turns) and a malformed answer (tests the invalid-format path).
SCRIPTED_ACTIONS: tuple[tuple[str, ...], ...] = (
    ("<think>Let me look around.</think><action>look</action>",),
    ("go to fridge 1",),
)


def check_kwargs(shared_data: Path) -> dict[str, Any] | None:
    """Kwargs for the registry's checker: bundled valid games, 10 turns; None without alfworld.

    The turn limit only shortens the scripted episodes; truncation is checked at whatever it is.
    """
    if any(importlib.util.find_spec(m) is None for m in ("alfworld", "textworld")):
        return None
    return {"split": "valid", "max_turns": 10}


class ALFWorldEnv(TextEnv):
    """Solve a household task in an ALFWorld text game by issuing one command per turn.

    ## Description
    ALFWorld (Shridhar et al. 2021) games played with the real engine: TextWorld's PDDL
    environment with ALFWorld's logic files (``alfworld.info.ALFRED_PDDL_PATH`` /
    ``ALFRED_TWL2_PATH``, baked into each ``game.tw-pddl`` by ``alfworld-generate``) and the
    wrappers ``AlfredTWEnv`` uses (see ``engine.py``). Six task families: pick_and_place_simple,
    look_at_obj_in_light, pick_clean_then_place_in_recep, pick_heat_then_place_in_recep,
    pick_cool_then_place_in_recep, pick_two_obj_and_place. By default the games bundled in
    ``games/`` (built by ``build_games.py`` from the scenes in ``scenes/``); set ``data_dir`` to
    play ALFWorld's own release.

    ## Action Space
    The model's raw text, parsed with :func:`resrl_agents.tools.react.parse_react`: one command
    inside ``<action>...</action>`` (optionally after ``<think>...</think>``; required when
    ``require_think``). The command is lower-cased and must be one of
    ``info["admissible_actions"]`` (the engine's admissible commands without "help").
    A malformed answer gets a format message; a well-formed command that is not admissible gets
    "Nothing happens." (exactly the engine's reply to a command it cannot run, which also leaves
    the game unchanged; it is answered here without an engine call). Both set
    ``info["invalid"] = True``, cost ``invalid_penalty`` and use a turn.

    ## Observation Space
    Text. After ``reset``: the room description and "Your task is to: ..." (the engine's intro
    without its banner). After ``step``: the engine's feedback for the command.

    ## Rewards
    ``reward_scale`` (10) on the step that wins, minus ``invalid_penalty`` (0.1) for every
    invalid step, else 0 (verl-agent / EMPG's ALFWorld reward).

    ## Starting State
    ``reset(seed=s)`` plays game ``games[s % len(games)]`` of the sorted solvable games, so the
    same seed gives the same game, observation and admissible actions, and seeds 0..n-1 visit
    every game once. Without a seed the game is drawn from ``np_random``.
    ``options={"task_id": id}`` picks a game by its folder relative to the games root.

    ## Episode End
    Terminated when the goal holds (``info["won"]``) or the engine ends the game. Truncated after
    ``max_turns`` steps (invalid ones included). ``step`` before ``reset`` or after the end raises
    ``gymnasium.error.ResetNeeded``; an engine crash ends the episode with ``info["error"]``.

    ## Expert
    ``expert_action()`` answers, from the current state, the next command of TextWorld's PDDL
    planner (``policy_commands``, ALFWorld's ``expert_type: planner``) with a thought naming the
    sub-goal. None once the episode has ended, and in a dead end (the planner finds no plan,
    e.g. when the agent holds an object that no receptacle of the game can take). Planning runs
    only when asked and is memoised (see ``engine.py``); the game's stored walkthrough is used
    only if the planner finds no admissible plan while the commands played so far are still the
    walkthrough's.

    ## Arguments
    * ``data_dir``: games folder; None = the bundled games.
    * ``split``: subfolder of ``data_dir`` to play (bundled: ``train`` | ``valid``; the ALFWorld
      release: ``train`` | ``valid_seen`` | ``valid_unseen``); None = ``data_dir`` itself.
    * ``max_turns`` (50), ``reward_scale`` (10.0), ``invalid_penalty`` (0.1), ``require_think``.
    * ``task_families``: play only these families (names as above); None = all six.
    * ``engine_cache``: memoised engine functions shared between copies (``shared_kwargs``).

    Each open instance holds its own engine (a private copy of fast-downward's library, ~33 MB,
    loaded on the first ``reset``); ``close`` hands it to the next instance, since the library
    cannot be unloaded (see ``engine.py``). Create envs once and reuse them with ``reset``.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        split: str | None = "train",
        max_turns: int = 50,
        reward_scale: float = 10.0,
        invalid_penalty: float = 0.1,
        require_think: bool = False,
        task_families: list[str] | tuple[str, ...] | None = None,
        engine_cache: EngineCache | None = None,
    ) -> None:
        super().__init__()
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        self.root = games_root(data_dir, split)
        self.games: list[GameSpec] = find_games(self.root, task_families)
        if not self.games:  # an engine over zero games would hang on reset: fail here instead
            raise ValueError(f"no solvable ALFWorld games under {self.root} "
                             f"(task_families={task_families}); each game folder needs a "
                             "game.tw-pddl with \"solvable\": true")
        self._by_id = {g.task_id: g for g in self.games}
        self.max_turns = max_turns
        self.reward_scale = reward_scale
        self.invalid_penalty = invalid_penalty
        self.require_think = require_think
        self._cache = engine_cache
        self._engine: AlfredEngine | None = None
        self._state: EngineState | None = None
        self._game: GameSpec | None = None
        self._task = ""
        self._played: list[str] = []  # commands the engine ran this episode (walkthrough fallback)
        self.turns = 0
        self.done = True
        self._obs = ""

    # ------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and "task_id" in options:
            task_id = str(options["task_id"])
            if task_id not in self._by_id:
                raise ValueError(f"unknown task_id {task_id!r} under {self.root}")
            game = self._by_id[task_id]
        elif seed is not None:
            game = self.games[seed % len(self.games)]
        else:
            game = self.games[int(self.np_random.integers(len(self.games)))]
        self._state = self._ensure_engine().reset(game.path)
        self._game, self.turns, self.done, self._played = game, 0, False, []
        self._obs, task = split_intro(self._state.feedback)
        self._task = task
        info: ResetInfo = {
            "task_id": game.task_id,
            "task": task,
            "family": game.family,
            "admissible_actions": list(self._state.admissible),
            "system_prompt": SYSTEM_PROMPT,
        }
        return self._obs, info

    def step(self, action: str):
        if self.done or self._state is None:
            raise ResetNeeded("ALFWorldEnv episode has ended (or never began); call reset()")
        self.turns += 1
        parsed = parse_react(action, require_think=self.require_think)
        command = parsed.action.lower() if parsed.action else ""
        error = ""
        if parsed.error is not None:
            obs, invalid = format_error(parsed.error), True
        elif command not in self._state.admissible:
            obs, invalid = NOT_ADMISSIBLE, True
        else:
            invalid = False
            try:
                self._played.append(command)
                self._state = self._ensure_engine().step(command)
                obs = self._state.feedback
            except Exception as exc:  # recorded, not raised (envs/base.py): the episode ends
                obs, error = f"The game engine failed: {exc!r}", repr(exc)
        moved = not invalid and not error  # the engine ran the command
        won = moved and self._state.won
        reward = self.reward_scale * float(won) - self.invalid_penalty * float(invalid)
        terminated = bool(error) or (moved and self._state.done) or won
        truncated = not terminated and self.turns >= self.max_turns
        self.done, self._obs = terminated or truncated, obs
        info: StepInfo = {"won": won, "invalid": invalid,
                          "admissible_actions": list(self._state.admissible)}
        if error:
            info["error"] = error
        return obs, float(reward), terminated, truncated, info

    def render(self) -> str:
        return self._obs

    def expert_action(self) -> str | None:
        """The planner's next command from the current state as a ReAct answer; None when the
        episode has ended (won, truncated, crashed) or no plan leads to the goal from here."""
        if self.done or self._state is None or self._engine is None or self._state.won:
            return None
        plan = self._engine.plan()
        if plan and plan[0] in self._state.admissible:
            return expert_answer(self._task, plan)
        walkthrough = load_walkthrough(self._game)
        command = on_walkthrough(walkthrough, self._played)
        if command is None or command not in self._state.admissible:
            return None
        return expert_answer(self._task, walkthrough[len(self._played):])

    def shared_kwargs(self) -> dict[str, Any]:
        return {"engine_cache": self._engine_cache()}

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self._state, self.done = None, True
        super().close()

    # ------------------------------------------------------------ helpers

    def _engine_cache(self) -> EngineCache:
        if self._cache is None:
            self._cache = EngineCache()
        return self._cache

    def _ensure_engine(self) -> AlfredEngine:
        if self._engine is None:
            self._engine = AlfredEngine(self._engine_cache())
        return self._engine
