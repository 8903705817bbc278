"""Build the bundled ALFWorld games from the hand-written scenes in ``scenes/``.

    python -m resrl_agents.envs.alfworld.build_games [--out DIR]

Pipeline, the way ALFWorld's own data was made (ALFRED scene + goal -> ``alfworld-generate``):

1. Each scene file (``scenes/<room>.pddl``) gives only the layout: the receptacles and which object
   lies in which. ``render_problem`` completes it into an ALFRED PDDL problem
   (``initial_state.pddl``) with the facts ALFRED's generator writes: types, one location per
   receptacle, object locations, affordances (``pickupable``, ``openable``, ``cleanable``,
   ``heatable``, ``coolable``, ``sliceable``, ``toggleable``, ``isReceptacleObject``) and
   ``canContain``, all from ``alfworld.gen.constants``, plus the task's goal from
   ``alfworld.gen.goal_library``.
2. ``traj_data.json`` holds the task type and its parameters, as in ALFRED.
3. ``generate_game`` does what ``alfworld-generate`` does: the package's logic files
   (``alfworld.info.ALFRED_PDDL_PATH`` / ``ALFRED_TWL2_PATH``), the task sentence from ALFWorld's
   goal templates (``add_task_to_grammar``), then ALFWorld's expert (``AlfredExpert``: the
   hand-coded one, else the PDDL planner) plays the game to decide ``solvable`` and record the
   ``walkthrough``.
4. ``verify`` replays every walkthrough through :class:`ALFWorldEnv` as ReAct answers: the goal
   must not hold at the start, and the episode must be won on exactly the last command, with
   reward 10, within ``max_turns``.

Only ``game.tw-pddl`` and ``traj_data.json`` are shipped (``games/<split>/<task>/trial_000/``);
``initial_state.pddl`` is rebuilt from the scenes. Random choices (template wording, the expert's
tie-breaks) are seeded per game, so a rebuild gives the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from resrl_agents.envs.alfworld.data import (BUNDLED_GAMES, FAMILIES, GAME_FILE, TRAJ_FILE,
                                             load_walkthrough)

SCENES = Path(__file__).resolve().parent / "scenes"
TRIAL = "trial_000"
STATIC_OBJECTS = {"DeskLamp", "FloorLamp"}  # lamps stand on a receptacle but are not picked up
MAX_EXPERT_STEPS = 45  # keep walkthroughs inside the env's 50-turn limit


@dataclass(frozen=True)
class Scene:
    name: str
    receptacles: tuple[str, ...]  # ALFRED ids, e.g. Cabinet_bar_1, Sink_bar_1_bar_SinkBasin
    contents: dict[str, str]  # object id -> receptacle id


@dataclass(frozen=True)
class Task:
    split: str  # train | valid
    scene: str
    family: str
    obj: str  # object_target (ALFRED class)
    parent: str = ""  # parent_target (receptacle class)
    toggle: str = ""  # toggle_target (look_at_obj_in_light)

    @property
    def name(self) -> str:
        """ALFRED-style folder name: <family>-<object>-<movable receptacle>-<parent>-<scene>."""
        target, scene = self.parent or self.toggle, self.scene.replace("_", "")
        return f"{self.family}-{self.obj}-None-{target}-{scene}"


T = Task
TASKS: tuple[Task, ...] = (
    T("train", "kitchen_1", "pick_and_place_simple", "Apple", "DiningTable"),
    T("train", "kitchen_1", "pick_two_obj_and_place", "Potato", "Fridge"),
    T("train", "kitchen_1", "pick_clean_then_place_in_recep", "Mug", "CoffeeMachine"),
    T("train", "kitchen_1", "pick_heat_then_place_in_recep", "Egg", "DiningTable"),
    T("train", "kitchen_1", "pick_heat_then_place_in_recep", "Potato", "CounterTop"),
    T("train", "kitchen_1", "pick_cool_then_place_in_recep", "Mug", "Cabinet"),
    T("train", "kitchen_2", "pick_and_place_simple", "Kettle", "CounterTop"),
    T("train", "kitchen_2", "pick_two_obj_and_place", "Apple", "Fridge"),
    T("train", "kitchen_2", "pick_clean_then_place_in_recep", "Bowl", "Shelf"),
    T("train", "kitchen_2", "pick_clean_then_place_in_recep", "Ladle", "Drawer"),
    T("train", "kitchen_2", "pick_heat_then_place_in_recep", "Apple", "SideTable"),
    T("train", "kitchen_2", "pick_cool_then_place_in_recep", "Potato", "CounterTop"),
    T("train", "bedroom_1", "pick_and_place_simple", "CellPhone", "Desk"),
    T("train", "bedroom_1", "pick_two_obj_and_place", "CD", "Shelf"),
    T("train", "bedroom_1", "look_at_obj_in_light", "Book", toggle="DeskLamp"),
    T("train", "bedroom_1", "look_at_obj_in_light", "AlarmClock", toggle="DeskLamp"),
    T("train", "livingroom_1", "pick_and_place_simple", "RemoteControl", "ArmChair"),
    T("train", "livingroom_1", "pick_two_obj_and_place", "Newspaper", "CoffeeTable"),
    T("train", "livingroom_1", "look_at_obj_in_light", "Newspaper", toggle="DeskLamp"),
    T("train", "bathroom_1", "pick_and_place_simple", "SoapBottle", "Cabinet"),
    T("train", "bathroom_1", "pick_two_obj_and_place", "ToiletPaper", "Toilet"),
    T("train", "bathroom_1", "pick_clean_then_place_in_recep", "Cloth", "CounterTop"),
    T("train", "bathroom_1", "pick_clean_then_place_in_recep", "SoapBar", "Cabinet"),
    T("valid", "kitchen_1", "pick_cool_then_place_in_recep", "Bread", "DiningTable"),
    T("valid", "kitchen_2", "pick_heat_then_place_in_recep", "Cup", "CounterTop"),
    T("valid", "bathroom_1", "pick_clean_then_place_in_recep", "Cloth", "Drawer"),
    T("valid", "bedroom_1", "look_at_obj_in_light", "CD", toggle="DeskLamp"),
    T("valid", "bedroom_1", "pick_two_obj_and_place", "Book", "Desk"),
    T("valid", "livingroom_1", "pick_and_place_simple", "KeyChain", "Sofa"),
    T("valid", "livingroom_1", "look_at_obj_in_light", "CreditCard", toggle="DeskLamp"),
)


# ------------------------------------------------------------------ scenes -> PDDL problems

def class_of(entity_id: str) -> str:
    """Class of an id: ``Apple_bar_1`` -> Apple; ``Sink_bar_1_bar_SinkBasin`` -> SinkBasin."""
    parts = entity_id.split("_bar_")
    return parts[-1] if not parts[-1].isdigit() else parts[0]


def parse_scene(path: Path) -> Scene:
    """Read a layout file: typed ``:objects`` lists and ``(inReceptacle obj recep)`` facts."""
    text = re.sub(r";[^\n]*", "", path.read_text())
    objects_block = re.search(r"\(:objects(.*?)\)", text, re.DOTALL).group(1)
    receptacles, objects, pending = [], [], []
    for token in objects_block.split():
        if token == "-":
            continue
        if token in ("receptacle", "object"):
            (receptacles if token == "receptacle" else objects).extend(pending)
            pending = []
        else:
            pending.append(token)
    contents = dict(re.findall(r"\(inReceptacle\s+(\S+)\s+(\S+)\)", text))
    if set(contents) != set(objects) or not set(contents.values()) <= set(receptacles):
        raise ValueError(f"{path.name}: every object must lie in exactly one declared receptacle")
    return Scene(path.stem, tuple(receptacles), contents)


def check_task(scene: Scene, task: Task) -> None:
    """Fail early on a task ALFRED could not pose in this scene."""
    from alfworld.gen import constants as C

    classes = Counter(class_of(o) for o in scene.contents)
    rclasses = {class_of(r) for r in scene.receptacles}
    need = {"pick_two_obj_and_place": 2}.get(task.family, 1)
    assert classes[task.obj] >= need, f"{task.name}: needs {need} {task.obj} in {scene.name}"
    if task.parent:
        assert task.parent in rclasses, f"{task.name}: no {task.parent} in {scene.name}"
        assert task.obj in C.VAL_RECEPTACLE_OBJECTS[task.parent], f"{task.name}: bad receptacle"
    tool = {"pick_heat_then_place_in_recep": ("Heatable", "Microwave"),
            "pick_cool_then_place_in_recep": ("Coolable", "Fridge"),
            "pick_clean_then_place_in_recep": ("Cleanable", "SinkBasin")}.get(task.family)
    if tool:
        assert task.obj in C.VAL_ACTION_OBJECTS[tool[0]] and tool[1] in rclasses, task.name
    if task.toggle:
        toggleable = C.VAL_ACTION_OBJECTS["Toggleable"]
        assert classes[task.toggle] >= 1 and task.toggle in toggleable, task.name


def _init_facts(scene: Scene) -> tuple[list[str], list[str]]:
    """(locations, :init facts) of a scene, derived the way ALFRED's generator derives them."""
    from alfworld.gen import constants as C

    loc = {r: f"loc_bar_{i}" for i, r in enumerate(scene.receptacles, start=1)}
    facts = ["(atLocation agent1 loc_bar_0)"]
    for r in scene.receptacles:
        facts += [f"(receptacleType {r} {class_of(r)}Type)", f"(receptacleAtLocation {r} {loc[r]})"]
        if class_of(r) in C.OPENABLE_CLASS_LIST:
            facts.append(f"(openable {r})")
    affordances = {"cleanable": "Cleanable", "heatable": "Heatable", "coolable": "Coolable",
                   "sliceable": "Sliceable", "toggleable": "Toggleable"}
    for o, r in scene.contents.items():
        cls = class_of(o)
        if cls not in STATIC_OBJECTS:
            assert cls in C.VAL_RECEPTACLE_OBJECTS[class_of(r)], f"{scene.name}: {o} not in {r}"
            facts.append(f"(pickupable {o})")
        facts += [f"(objectType {o} {cls}Type)", f"(inReceptacle {o} {r})",
                  f"(objectAtLocation {o} {loc[r]})"]
        if cls in C.MOVABLE_RECEPTACLES:
            facts.append(f"(isReceptacleObject {o})")
        facts += [f"({pred} {o})" for pred, key in affordances.items()
                  if cls in C.VAL_ACTION_OBJECTS[key]]
    rtypes = sorted({class_of(r) for r in scene.receptacles})
    otypes = sorted({class_of(o) for o in scene.contents})
    facts += [f"(canContain {rt}Type {ot}Type)" for rt in rtypes for ot in otypes
              if ot in C.VAL_RECEPTACLE_OBJECTS.get(rt, ())]
    return ["loc_bar_0", *loc.values()], facts


def render_problem(scene: Scene, task: Task) -> str:
    """The complete PDDL problem (``initial_state.pddl``): scene facts plus the task's goal."""
    from alfworld.gen import constants as C
    from alfworld.gen import goal_library

    rtypes = sorted(set(C.RECEPTACLES) - set(C.MOVABLE_RECEPTACLES))
    otypes = sorted(set(C.OBJECTS) - set(rtypes))
    locations, facts = _init_facts(scene)
    objects = (["agent1 - agent", ""] + [f"{t}Type - otype" for t in otypes] + [""]
               + [f"{t}Type - rtype" for t in rtypes] + [""]
               + [f"{o} - object" for o in sorted(scene.contents)] + [""]
               + [f"{r} - receptacle" for r in scene.receptacles] + [""]
               + [f"{loc} - location" for loc in locations])
    goal = goal_library.gdict[task.family]["pddl"].replace("#", "-").format(
        obj=task.obj, recep=task.parent, toggle=task.toggle, mrecep="")
    indent = "\n        "
    return (f"\n(define\n    (problem {scene.name})\n\n    (:domain alfred)\n\n"
            f"    (:objects{indent}{indent.join(objects)}\n    )\n\n"
            f"    (:init{indent}{indent.join(facts)}\n    )\n{goal}")


def traj_data(task: Task) -> dict:
    """ALFRED's task description fields that ``alfworld-generate`` and its expert read."""
    return {"task_id": TRIAL, "task_type": task.family,
            "pddl_params": {"object_target": task.obj, "parent_target": task.parent,
                            "toggle_target": task.toggle, "mrecep_target": "",
                            "object_sliced": False},
            "scene": {"scene_name": task.scene}}


# ------------------------------------------------------------------ alfworld-generate

def _expert_env(expert_type: str):
    """The environment stack ``alfworld-generate`` solves games with."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredExpert, AlfredInfos
    from textworld.envs import PddlEnv

    env = PddlEnv(textworld.EnvInfos(admissible_commands=True, extras=["gamefile"]))
    env = AlfredInfos(AlfredDemangler(env, shuffle=False))
    return AlfredExpert(env, expert_type=expert_type)


def _solve(expert_env, game_file: Path) -> list[str] | None:
    """``is_solvable`` of ``alfworld-generate`` (no random perturbation); None if unsolved.

    A walkthrough is kept only if it wins within ``MAX_EXPERT_STEPS`` commands without "help"
    (which the env does not offer). The planner returns its whole plan at reset.
    """
    from alfworld.agents.environment.alfred_tw_env import AlfredExpertType

    try:
        expert_env.load(str(game_file))
        state = expert_env.reset()
        if expert_env.expert_type == AlfredExpertType.PLANNER:
            walkthrough, done = list(state["extra.expert_plan"]), True
        else:
            walkthrough, done = [], False
            while not done and len(walkthrough) <= MAX_EXPERT_STEPS:
                command = state["extra.expert_plan"][0]
                state, _, done = expert_env.step(command)
                walkthrough.append(command)
    except Exception as exc:  # the hand-coded expert gives up by raising (timeout, failed subgoal)
        print(f"  {expert_env.expert_type} expert failed on {game_file.parent.parent.name}: "
              f"{exc!r}")
        return None
    ok = done and 0 < len(walkthrough) <= MAX_EXPERT_STEPS and "help" not in walkthrough
    return walkthrough if ok else None


def generate_game(game_dir: Path, experts: list, seed: str) -> tuple[list[str] | None, str]:
    """Write ``game.tw-pddl`` from ``initial_state.pddl`` + ``traj_data.json``.

    Mirrors ``gen_game_files`` of ALFWorld's ``alfworld-generate``: logic files, templated task
    sentence, then an expert decides ``solvable`` and records the ``walkthrough``. ``experts`` are
    tried in order (hand-coded first, as ``alfworld-generate``'s default; the PDDL planner when the
    hand-coded expert loops, e.g. on some pick-two tasks). Returns (walkthrough, expert type).
    """
    from alfworld.agents.utils.misc import add_task_to_grammar
    from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH

    random.seed(seed)  # the goal template and the expert's tie-breaks use the global RNG
    traj = json.loads((game_dir / TRAJ_FILE).read_text())
    gamedata = {"pddl_domain": Path(ALFRED_PDDL_PATH).read_text(),
                "grammar": add_task_to_grammar(Path(ALFRED_TWL2_PATH).read_text(), traj),
                "pddl_problem": (game_dir / "initial_state.pddl").read_text(),
                "solvable": None, "walkthrough": None}
    game_file = game_dir / GAME_FILE
    game_file.write_text(json.dumps(gamedata))
    walkthrough, used = None, ""
    for expert_env in experts:
        random.seed(seed)
        walkthrough, used = _solve(expert_env, game_file), expert_env.expert_type
        if walkthrough is not None:
            break
    gamedata.update(walkthrough=walkthrough, solvable=walkthrough is not None)
    game_file.write_text(json.dumps(gamedata))
    return walkthrough, used


# ------------------------------------------------------------------ verification

def verify(root: Path, split: str, max_turns: int = 50) -> Counter:
    """Replay each game's walkthrough through ALFWorldEnv; count wins per family, or raise."""
    from resrl_agents.envs.alfworld.engine import AlfredEngine
    from resrl_agents.envs.alfworld.env import ALFWorldEnv

    env = ALFWorldEnv(data_dir=root, split=split, max_turns=max_turns)
    probe = AlfredEngine(env.shared_kwargs()["engine_cache"])
    wins: Counter = Counter()
    try:
        for game in env.games:
            assert not probe.reset(game.path).won, f"{game.task_id}: goal holds at the start"
            walkthrough = load_walkthrough(game)
            assert 0 < len(walkthrough) < max_turns, f"{game.task_id}: walkthrough length"
            env.reset(options={"task_id": game.task_id})
            for i, command in enumerate(walkthrough, start=1):
                _, reward, terminated, truncated, info = env.step(
                    f"<think>Step {i} of the expert plan.</think><action>{command}</action>")
                assert not info["invalid"], f"{game.task_id}: {command!r} not admissible"
                last = i == len(walkthrough)
                assert info["won"] == last and terminated == last and not truncated, (
                    f"{game.task_id}: won={info['won']} at step {i}/{len(walkthrough)}")
            assert reward == env.reward_scale, f"{game.task_id}: final reward {reward}"
            wins[game.family] += 1
    finally:
        probe.close()
        env.close()
    return wins


# ------------------------------------------------------------------ main

def build(out: Path, work: Path) -> dict[str, Counter]:
    """Render, generate and verify every task under ``work``; copy the games into ``out``."""
    scenes = {p.stem: parse_scene(p) for p in sorted(SCENES.glob("*.pddl"))}
    names = [(t.split, t.name) for t in TASKS]
    assert len(set(names)) == len(names), "two tasks share a folder name"
    experts = [_expert_env("handcoded"), _expert_env("planner")]
    for task in TASKS:
        check_task(scenes[task.scene], task)
        game_dir = work / task.split / task.name / TRIAL
        game_dir.mkdir(parents=True, exist_ok=True)
        (game_dir / "initial_state.pddl").write_text(render_problem(scenes[task.scene], task))
        (game_dir / TRAJ_FILE).write_text(json.dumps(traj_data(task), indent=1) + "\n")
        walkthrough, expert = generate_game(game_dir, experts, seed=f"{task.split}/{task.name}")
        if walkthrough is None:
            raise RuntimeError(f"no expert could solve {task.split}/{task.name}")
        print(f"{task.split}/{task.name}: {len(walkthrough)} steps ({expert} expert)")
    report = {}
    for split in sorted({t.split for t in TASKS}):
        report[split] = verify(work, split)
        shutil.rmtree(out / split, ignore_errors=True)
        for task in (t for t in TASKS if t.split == split):
            src, dst = work / split / task.name / TRIAL, out / split / task.name / TRIAL
            dst.mkdir(parents=True)
            for name in (GAME_FILE, TRAJ_FILE):
                shutil.copy(src / name, dst / name)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=BUNDLED_GAMES, help="games folder to write")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ALFWORLD_DATA", str(Path(tmp) / "alfworld_data"))
        report = build(args.out, Path(tmp) / "games")
    for split, wins in report.items():
        per_family = ", ".join(f"{f}: {wins[f]}" for f in FAMILIES)
        print(f"{split}: {sum(wins.values())} games verified ({per_family})")


if __name__ == "__main__":
    main()
