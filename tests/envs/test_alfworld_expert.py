"""ALFWorld expert (``ALFWorldEnv.expert_action``): the PDDL planner wins every game, from reset and
after wrong moves, answers in the env's own format, and feeds SFT's expert chats.

Needs the ``alfworld`` extra (alfworld 0.4.2 + textworld 1.7.0); the module is skipped without it.
"""

from __future__ import annotations

import importlib.util
import json
import random

import pytest

if importlib.util.find_spec("alfworld") is None or importlib.util.find_spec("textworld") is None:
    pytest.skip("alfworld/textworld not installed (pip install -e '.[alfworld]')",
                allow_module_level=True)

from resrl_agents.envs.alfworld import ALFWorldEnv  # noqa: E402
from resrl_agents.envs.alfworld.data import BUNDLED_GAMES, find_games  # noqa: E402
from resrl_agents.envs.alfworld.expert import (expert_answer, on_walkthrough,  # noqa: E402
                                               subgoal, thought)
from resrl_agents.tools.react import parse_react  # noqa: E402

pytestmark = [pytest.mark.alfworld, pytest.mark.usefixtures("alfworld_data")]
SPLITS = ("train", "valid")
BUNDLED = [(s, g.task_id) for s in SPLITS for g in find_games(BUNDLED_GAMES / s)]


@pytest.fixture(scope="module")
def bundled_envs():
    envs = {split: ALFWorldEnv(split=split) for split in SPLITS}
    yield envs
    for env in envs.values():
        env.close()


def expert_command(env: ALFWorldEnv) -> str:
    """The expert's answer, checked with the env's own parser: think present, action admissible."""
    answer = env.expert_action()
    assert answer is not None, "expert gave up before the game was won"
    parsed = parse_react(answer, require_think=True)
    assert parsed.error is None and parsed.thought, answer
    assert parsed.action.lower() in env._state.admissible, answer
    return answer


def can_put_down(env: ALFWorldEnv) -> bool:
    """Whether the game lets the agent put anything down (its problem has ``canContain`` facts).

    Without them (the shared look-at game), taking a wrong object is a dead end: no expert wins.
    """
    with open(env._game.path) as f:
        return "(canContain" in json.load(f)["pddl_problem"]


def follow_expert(env: ALFWorldEnv, detour_at: int | None = None, seed: int = 0) -> int:
    """Play expert answers until the episode ends; at turn ``detour_at`` first play two random
    admissible commands other than the expert's (no "take" when nothing can be put down again).
    Asserts the win; returns the turns used."""
    rng = random.Random(seed)
    while True:
        answer = expert_command(env)
        if env.turns == detour_at:
            irreversible = () if can_put_down(env) else ("take ",)
            for _ in range(2):
                expert_cmd = parse_react(answer).action.lower()
                wrong = rng.choice([c for c in env._state.admissible
                                    if c != expert_cmd and not c.startswith(irreversible)])
                _, reward, terminated, truncated, info = env.step(f"<action>{wrong}</action>")
                assert not (terminated or truncated or info["invalid"]), wrong
                answer = expert_command(env)
        _, reward, terminated, truncated, info = env.step(answer)
        assert not info["invalid"] and "error" not in info, (answer, info)
        if terminated or truncated:
            break
    assert terminated and info["won"] and reward == env.reward_scale, (env.turns, info)
    assert env.turns <= env.max_turns
    assert env.expert_action() is None  # nothing to do once won
    return env.turns


def check_game(env: ALFWorldEnv, task_id: str, seed: int) -> None:
    """The expert wins from reset, then again after two wrong moves half-way (a fresh state)."""
    env.reset(options={"task_id": task_id})
    turns = follow_expert(env)
    env.reset(options={"task_id": task_id})
    follow_expert(env, detour_at=turns // 2, seed=seed)


@pytest.mark.parametrize("split,task_id", BUNDLED, ids=[f"{s}/{t.split('/')[0]}" for s, t in BUNDLED])
def test_expert_wins_bundled_game(bundled_envs, split, task_id):
    check_game(bundled_envs[split], task_id, seed=BUNDLED.index((split, task_id)))


@pytest.fixture(scope="module")
def shared_env(shared_data):
    root = shared_data / "alfworld" / "games"
    if not (root / "valid_seen").is_dir():
        pytest.skip(f"shared ALFWorld games not found under {root}")
    env = ALFWorldEnv(data_dir=root, split="valid_seen")
    yield env
    env.close()


def test_expert_wins_shared_games(shared_env):
    assert len(shared_env.games) >= 6
    for i, game in enumerate(shared_env.games):
        check_game(shared_env, game.task_id, seed=i)


def test_expert_none_in_dead_end(shared_env):
    """Holding a wrong object where nothing can be put down: the planner finds no plan -> None."""
    game = next(g for g in shared_env.games if g.family == "look_at_obj_in_light")
    shared_env.reset(options={"task_id": game.task_id})
    assert not can_put_down(shared_env)
    for command in ("go to desk 1", "take laptop 1 from desk 1"):
        *_, info = shared_env.step(f"<action>{command}</action>")
        assert not info["invalid"]
    assert not any(c.startswith("move ") for c in shared_env._state.admissible)
    assert shared_env.expert_action() is None


def test_expert_puts_down_a_wrong_object(bundled_envs):
    """Holding an object the task does not need: the expert first frees its hands, then wins."""
    env = bundled_envs["train"]
    env.reset(options={"task_id": "look_at_obj_in_light-Book-None-DeskLamp-bedroom1/trial_000"})
    for command in ("go to bed 1", "take cellphone 2 from bed 1"):
        *_, info = env.step(f"<action>{command}</action>")
        assert not info["invalid"]
    assert parse_react(expert_command(env)).action.startswith("move cellphone 2 to ")
    follow_expert(env)


def test_expert_none_outside_an_episode(bundled_envs):
    env = ALFWorldEnv(split="valid", max_turns=1, engine_cache=bundled_envs["valid"]._cache)
    try:
        assert env.expert_action() is None  # before reset
        env.reset(seed=0)
        _, _, terminated, truncated, _ = env.step("<action>look</action>")
        assert truncated and not terminated
        assert env.expert_action() is None  # truncated: the episode is over
    finally:
        env.close()


def test_walkthrough_fallback_when_planner_finds_nothing(bundled_envs, monkeypatch):
    """Without a plan the stored walkthrough is followed while the agent is on it, then None."""
    from resrl_agents.envs.alfworld.data import load_walkthrough

    env = bundled_envs["train"]
    env.reset(seed=1)
    walkthrough = load_walkthrough(env._game)
    monkeypatch.setattr(env._engine, "plan", lambda: ())
    for command in walkthrough:
        answer = expert_command(env)
        assert parse_react(answer).action == command
        *_, info = env.step(answer)
    assert info["won"] and env.expert_action() is None
    env.reset(seed=1)
    env.step(f"<action>{next(c for c in env._state.admissible if c != walkthrough[0])}</action>")
    assert env.expert_action() is None  # off the walkthrough and no plan: no expert


def test_expert_text_helpers():
    plan = ["go to fridge 1", "open fridge 1", "take apple 1 from fridge 1", "go to table 1",
            "move apple 1 to table 1"]
    assert subgoal(plan) == "take apple 1 from fridge 1" and subgoal(plan[:2]) is None
    assert thought("put an apple on table.", plan) == (
        "To put an apple on table, I need to take apple 1 from fridge 1, so first I go to fridge 1.")
    assert "next step is to take apple 1" in thought("x", plan[2:])
    assert thought("put an apple on table.", plan[-1:]).startswith("One step is left: move apple 1")
    parsed = parse_react(expert_answer("", plan), require_think=True)
    assert parsed.error is None and parsed.action == "go to fridge 1"
    assert on_walkthrough(plan, plan[:2]) == plan[2]
    assert on_walkthrough(plan, ["look"]) is None and on_walkthrough(plan, plan) is None


def test_sft_expert_conversations_win():
    """SFT's expert mode on ALFWorld-v0: 3 chats whose assistant turns win when replayed."""
    from resrl_agents.trainers.sft import expert_conversations

    convs = expert_conversations("resrl_agents/ALFWorld-v0", {}, 3, seed=0)
    assert len(convs) == 3
    env = ALFWorldEnv()
    try:
        for seed, (messages, _tools) in enumerate(convs):
            answers = [m["content"] for m in messages if m["role"] == "assistant"]
            assert messages[0]["role"] == "system" and answers
            env.reset(seed=seed)
            for answer in answers:
                _, _, terminated, _, info = env.step(answer)
            assert terminated and info["won"], (seed, answers)
    finally:
        env.close()
