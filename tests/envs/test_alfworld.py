"""ALFWorld env: expert walkthroughs win through our env, the contract, and the bundled games.

Scripted policies only (the games' own expert walkthroughs, wrapped as ReAct answers). Needs the
``alfworld`` extra (alfworld 0.4.2 + textworld 1.7.0); the module is skipped without it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("alfworld") is None or importlib.util.find_spec("textworld") is None:
    pytest.skip("alfworld/textworld not installed (pip install -e '.[alfworld]')",
                allow_module_level=True)

from gymnasium.error import ResetNeeded  # noqa: E402

from resrl_agents.envs.alfworld import FAMILIES, SCRIPTED_ACTIONS, ALFWorldEnv  # noqa: E402
from resrl_agents.envs.alfworld.build_games import (TASKS, TRIAL, parse_scene,  # noqa: E402
                                                    render_problem, traj_data, SCENES)
from resrl_agents.envs.alfworld.data import (BUNDLED_GAMES, GAME_FILE, TRAJ_FILE,  # noqa: E402
                                             find_games, load_walkthrough)
from resrl_agents.envs.checker import check_env  # noqa: E402

pytestmark = [pytest.mark.alfworld, pytest.mark.usefixtures("alfworld_data")]
REPO_ROOT = Path(__file__).resolve().parents[2]


def react(command: str) -> str:
    return f"<think>The expert would do this now.</think><action>{command}</action>"


@pytest.fixture(scope="module")
def shared_games(shared_data) -> Path:
    root = shared_data / "alfworld" / "games"
    if not (root / "valid_seen").is_dir():
        pytest.skip(f"shared ALFWorld games not found under {root}")
    return root


@pytest.fixture(scope="module")
def shared_env(shared_games):
    env = ALFWorldEnv(data_dir=shared_games, split="valid_seen")
    yield env
    env.close()


@pytest.fixture(scope="module")
def bundled_envs():
    envs = {split: ALFWorldEnv(split=split) for split in ("train", "valid")}
    yield envs
    for env in envs.values():
        env.close()


def play_walkthrough(env: ALFWorldEnv, task_id: str) -> list[tuple[float, bool, bool, dict]]:
    """Reset to ``task_id``, play its expert walkthrough; (reward, terminated, truncated, info)s."""
    obs, info = env.reset(options={"task_id": task_id})
    assert info["task"] and info["task"] in obs and "help" not in info["admissible_actions"]
    game = next(g for g in env.games if g.task_id == task_id)
    steps = []
    for command in load_walkthrough(game):
        _, reward, terminated, truncated, step_info = env.step(react(command))
        steps.append((reward, terminated, truncated, step_info))
        assert not step_info["invalid"], f"{task_id}: {command!r} was not admissible"
        assert "help" not in step_info["admissible_actions"]
    return steps


def assert_won_at_end(steps) -> None:
    assert steps, "empty walkthrough"
    *middle, (reward, terminated, truncated, info) = steps
    assert all(not s[3]["won"] and not s[1] and not s[2] and s[0] == 0.0 for s in middle)
    assert info["won"] and terminated and not truncated
    assert reward == 10.0


# ---------------------------------------------------------------- expert walkthroughs win


@pytest.mark.parametrize("family", FAMILIES)
def test_shared_game_walkthrough_wins(shared_env, family):
    games = [g for g in shared_env.games if g.family == family]
    assert len(games) == 1, f"expected one shared game of {family}"
    assert_won_at_end(play_walkthrough(shared_env, games[0].task_id))


def _bundled_ids(split: str) -> list[str]:
    return [g.task_id for g in find_games(BUNDLED_GAMES / split)]


@pytest.mark.parametrize("split,task_id",
                         [(s, t) for s in ("train", "valid") for t in _bundled_ids(s)])
def test_bundled_game_walkthrough_wins(bundled_envs, split, task_id):
    assert_won_at_end(play_walkthrough(bundled_envs[split], task_id))


def test_bundled_games_cover_every_family():
    for split, least in (("train", 2), ("valid", 1)):
        games = find_games(BUNDLED_GAMES / split)
        counts = {f: len([g for g in games if g.family == f]) for f in FAMILIES}
        assert all(n >= least for n in counts.values()), f"{split}: {counts}"
    size = sum(p.stat().st_size for p in BUNDLED_GAMES.rglob("*") if p.is_file())
    assert size < 10 * 2**20, f"bundled games take {size} bytes"


def test_bundled_games_are_reproducible_from_scenes():
    """The shipped PDDL problems and task files are exactly what scenes/ + build_games.py give."""
    scenes = {p.stem: parse_scene(p) for p in SCENES.glob("*.pddl")}
    assert set(scenes) == {"kitchen_1", "kitchen_2", "bedroom_1", "livingroom_1", "bathroom_1"}
    shipped = {(s, g.task_id) for s in ("train", "valid") for g in find_games(BUNDLED_GAMES / s)}
    assert shipped == {(t.split, f"{t.name}/{TRIAL}") for t in TASKS}
    for task in TASKS:
        game_dir = BUNDLED_GAMES / task.split / task.name / TRIAL
        with open(game_dir / GAME_FILE) as f:
            game = json.load(f)
        assert game["pddl_problem"] == render_problem(scenes[task.scene], task), task.name
        assert json.loads((game_dir / TRAJ_FILE).read_text()) == traj_data(task), task.name


# ---------------------------------------------------------------- the text-env contract


def test_same_seed_same_game_and_start():
    a, b = ALFWorldEnv(split="valid"), ALFWorldEnv(split="valid")  # independent engines, caches
    try:
        for seed in (0, 7, 123):
            assert a.reset(seed=seed) == b.reset(seed=seed)
        obs, info = a.reset(seed=3)
        a.step(react(info["admissible_actions"][0]))
        assert a.reset(seed=3) == (obs, info)  # a reset after moves starts over
        ids = [a.reset(seed=s)[1]["task_id"] for s in range(len(a.games))]
        assert sorted(ids) == sorted(g.task_id for g in a.games)  # seeds 0..n-1 visit every game
    finally:
        a.close()
        b.close()


def test_reset_info_fields(shared_env):
    obs, info = shared_env.reset(seed=0)
    assert not obs.startswith("-= Welcome")
    assert info["family"] in FAMILIES and info["task_id"].endswith("trial_offline_000")
    assert obs.rstrip().endswith(f"Your task is to: {info['task']}")
    assert "<think>" in info["system_prompt"] and "<action>" in info["system_prompt"]
    _, info = shared_env.reset(seed=1)
    assert {"go to fridge 1", "look", "inventory"} <= set(info["admissible_actions"])


def test_malformed_answer_is_an_observation(bundled_envs):
    env = bundled_envs["train"]
    _, info = env.reset(seed=0)
    obs, reward, terminated, truncated, step_info = env.step("go to fridge 1")  # no <action> tags
    assert obs.startswith("Invalid action format") and step_info["invalid"] and not step_info["won"]
    assert reward == pytest.approx(-0.1) and not terminated and not truncated and env.turns == 1
    assert step_info["admissible_actions"] == info["admissible_actions"]  # nothing happened
    obs, reward, *_ = env.step("<action>look</action><action>look</action>")
    assert obs.startswith("Invalid action format") and reward == pytest.approx(-0.1)


def test_inadmissible_and_help_are_invalid(bundled_envs):
    env = bundled_envs["train"]
    env.reset(seed=1)
    for answer in ("<action>fly to the moon</action>", "<action>help</action>"):
        obs, reward, terminated, _, info = env.step(answer)
        assert obs == "Nothing happens." and info["invalid"] and not terminated
        assert reward == pytest.approx(-0.1)
    obs, reward, _, _, info = env.step("<action>LOOK</action>")  # commands are matched lower-cased
    assert not info["invalid"] and reward == 0.0 and obs != "Nothing happens."


def test_require_think_and_custom_penalty():
    env = ALFWorldEnv(require_think=True, invalid_penalty=0.5)
    try:
        env.reset(seed=0)
        obs, reward, _, _, info = env.step("<action>look</action>")
        assert info["invalid"] and "think" in obs and reward == pytest.approx(-0.5)
        _, reward, _, _, info = env.step("<think>ok</think><action>look</action>")
        assert not info["invalid"] and reward == 0.0
    finally:
        env.close()


def test_truncation_at_max_turns():
    env = ALFWorldEnv(max_turns=3)
    try:
        env.reset(seed=2)
        results = [env.step(answer) for answer in (react("look"), "garbage", react("inventory"))]
        assert [r[3] for r in results] == [False, False, True]  # truncated on turn 3 exactly
        assert not any(r[2] for r in results)  # never terminated
        with pytest.raises(ResetNeeded):
            env.step(react("look"))
    finally:
        env.close()


def test_engine_crash_is_recorded_not_raised(monkeypatch):
    env = ALFWorldEnv(split="valid")
    try:
        env.reset(seed=0)

        def crash(command):
            raise RuntimeError("engine crashed")

        monkeypatch.setattr(env._engine, "step", crash)
        obs, reward, terminated, truncated, info = env.step(react("look"))
        assert "engine crashed" in info["error"] and "engine crashed" in obs
        assert terminated and not truncated and not info["won"] and reward == 0.0
    finally:
        env.close()


def test_step_before_reset_raises():
    env = ALFWorldEnv()
    with pytest.raises(ResetNeeded):
        env.step(react("look"))


def test_check_env_contract():
    factory = functools.partial(ALFWorldEnv, max_turns=4)
    for script in SCRIPTED_ACTIONS:
        check_env(factory, seeds=(0, 5), actions=script)


# ---------------------------------------------------------------- game discovery


def test_task_family_filter():
    env = ALFWorldEnv(task_families=["look_at_obj_in_light"])
    assert env.games and {g.family for g in env.games} == {"look_at_obj_in_light"}
    with pytest.raises(ValueError, match="unknown task families"):
        ALFWorldEnv(task_families=["pick_and_throw"])


def test_no_solvable_games_fails_before_reset(tmp_path):
    with pytest.raises(FileNotFoundError):
        ALFWorldEnv(data_dir=tmp_path, split="train")
    src = next((BUNDLED_GAMES / "valid").rglob(GAME_FILE)).parent
    dst = tmp_path / "games" / src.parent.name / src.name
    shutil.copytree(src, dst)
    game = json.loads((dst / GAME_FILE).read_text())
    (dst / GAME_FILE).write_text(json.dumps({**game, "solvable": False}))
    with pytest.raises(ValueError, match="no solvable ALFWorld games"):
        ALFWorldEnv(data_dir=tmp_path / "games", split=None)
    (dst / GAME_FILE).write_text(json.dumps(game))
    assert len(ALFWorldEnv(data_dir=tmp_path / "games", split=None).games) == 1


# ---------------------------------------------------------------- engine fidelity and imports


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_engine_matches_plain_alfworld_stack(shared_env, family):
    """Our engine (memoised parses, shallow context copies) gives the same text and commands as
    AlfredTWEnv's plain wrapper stack: 12 random admissible commands, then the walkthrough."""
    import random

    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    from textworld.envs.pddl import PddlEnv

    game = next(g for g in shared_env.games if g.family == family)
    plain = AlfredInfos(AlfredDemangler(PddlEnv(textworld.EnvInfos(
        won=True, admissible_commands=True, extras=["gamefile"])), shuffle=False))
    rng = random.Random(family)

    def admissible(state) -> list[str]:
        return [c for c in state["admissible_commands"] if c != "help"]

    def reset_both():
        argv = list(sys.argv)
        try:
            state = plain.reset()
        finally:
            sys.argv = argv  # the PDDL translator overwrites sys.argv
        obs, info = shared_env.reset(options={"task_id": game.task_id})
        assert obs in state.feedback and info["admissible_actions"] == admissible(state)
        return info

    def step_both(command: str) -> dict:
        state, _, _ = plain.step(command)
        obs, _, _, _, info = shared_env.step(react(command))
        assert obs == state.feedback
        assert info["admissible_actions"] == admissible(state) and info["won"] == state["won"]
        return info

    argv = list(sys.argv)
    try:
        plain.load(game.path)
    finally:
        sys.argv = argv
    info = reset_both()
    for _ in range(12):
        info = step_both(rng.choice(info["admissible_actions"]))
    reset_both()
    for command in load_walkthrough(game):
        info = step_both(command)
    assert info["won"]


def test_env_imports_no_torch(tmp_path):
    code = ("import sys\n"
            "from resrl_agents.envs.alfworld import ALFWorldEnv\n"
            "env = ALFWorldEnv(split='valid')\n"
            "env.reset(seed=0)\n"
            "env.step('<think>x</think><action>look</action>')\n"
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "assert sys.argv == ['-c'], sys.argv\n")
    env = {**os.environ, "ALFWORLD_DATA": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
