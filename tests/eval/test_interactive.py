"""Interactive play (eval/interactive.py, eval/interactive_ui.py): the session against the training
rollout, the terminal UI driven by scripted input (steps, a take-over, run to the end, save), a
person winning an ALFWorld game with the expert's plan as typed input, and the CLI entry points."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
from rich.console import Console

import resrl_agents.envs  # noqa: F401  (registers the env ids)
from resrl_agents.envs.alfworld.data import load_walkthrough
from resrl_agents.eval.interactive import (AGENT, HUMAN, Agent, EpisodeOver, InteractiveSession, human_answer,
                                           is_react)
from resrl_agents.eval.interactive_ui import PlayUI
from resrl_agents.rollout.agent_loop import rollout
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.policy import HFPolicy

REPO = Path(__file__).resolve().parents[2]
ALFWORLD = "resrl_agents/ALFWorld-v0"
MAX_TURNS = 6
SEED = 0  # bundled valid game 0: look_at_obj_in_light-CD-None-DeskLamp-bedroom1 (desk 1 is admissible at the start)


class Recorder(gym.Wrapper):
    """Keeps every answer the env received, so a test can check what a take-over sent."""

    def __init__(self, env):
        super().__init__(env)
        self.received: list[str] = []

    def step(self, action):
        self.received.append(action)
        return self.env.step(action)


@pytest.fixture(scope="module")
def alfworld():
    env = Recorder(gym.make(ALFWORLD, split="valid", max_turns=MAX_TURNS))
    yield env
    env.close()


def _agent(tiny, history: str = "full", **over) -> Agent:
    model, tok = tiny
    kw = dict(max_new_tokens=12, max_context_tokens=4096, temperature=0.0, top_p=1.0, seed=3) | over
    return Agent(HFPolicy(model, tok), ChatRenderer(tok), history, **kw)


def _ui(session: InteractiveSession, script: str, tmp_path: Path) -> tuple[PlayUI, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    return PlayUI(session, seeds=[SEED, SEED + 1], out_dir=tmp_path, stdin=io.StringIO(script), console=console), out


def test_human_answer_wraps_commands_only_for_react_envs():
    assert human_answer(" go to desk 1 ", react=True) == "<action>go to desk 1</action>"
    assert human_answer("<think>x</think><action>look</action>", react=True) == "<think>x</think><action>look</action>"
    assert human_answer("#### 42", react=False) == "#### 42"
    assert is_react("... inside <action> </action>") and not is_react("Answer with #### N") and not is_react(None)


@pytest.mark.parametrize("history", ["full", "window:2"])
def test_agent_turns_match_the_training_rollout(tiny, alfworld, history):
    """Greedy agent turns of a session are the turns rollout() generates: same prompts, same answers."""
    agent = _agent(tiny, history)
    [traj] = rollout([alfworld], [SEED], [0], agent.policy, agent.renderer, history=history,
                     max_new_tokens=agent.max_new_tokens, max_context_tokens=agent.max_context_tokens,
                     temperature=0.0, top_p=1.0, seed=agent.seed)
    session = InteractiveSession(alfworld, agent)
    session.reset(seed=SEED)
    seen = ""  # full layout: the prompt of turn t is every earlier turn's text plus the new context
    for t, turn in enumerate(traj.turns):
        seen = seen + turn.obs_text if history == "full" else turn.obs_text
        assert session.prompt()[0] == seen, f"turn {t}"
        rec = session.step()
        assert rec.text == turn.action_text and rec.reward == turn.reward and rec.actor == AGENT
        seen += agent.renderer.decode(turn.action_ids)
    assert session.done and session.state.truncated == traj.truncated and len(session.turns) == MAX_TURNS
    assert session.transcript()["messages"] == list(traj.messages)


def test_ui_steps_takes_over_runs_to_the_end_and_saves(tiny, alfworld, tmp_path):
    session = InteractiveSession(alfworld, _agent(tiny), env_id=ALFWORLD, policy_label="hf:tiny")
    alfworld.received.clear()
    path = tmp_path / "out" / "episode.json"
    ui, out = _ui(session, f"s\n\na go to desk 1\np\nr\na look\nw {path}\nq\n", tmp_path)
    ui.run()
    shown = out.getvalue()

    # the env got exactly the typed action (as a ReAct answer) on turn 3, the agent's answers elsewhere
    assert len(alfworld.received) == MAX_TURNS  # s, Enter, take-over, then r ran turns 4..6; "a look" was refused
    assert alfworld.received[2] == "<action>go to desk 1</action>"
    assert "Turn 3 · you" in shown and "You arrive at desk 1" in shown and "Episode over: truncated" in shown
    assert "the episode is over" in shown  # "a look" after the end
    assert "prompt ·" in shown and "<action>go to desk 1</action>" in shown  # p shows the take-over in the context

    data = json.loads(path.read_text())
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # atomic save leaves no temp file
    assert data["env_id"] == ALFWORLD and data["policy"] == "hf:tiny" and data["seed"] == SEED
    assert data["task"] == "examine the cd with the desklamp." and data["task_id"].startswith("look_at_obj_in_light-CD")
    turns = data["turns"]
    assert [t["actor"] for t in turns] == [AGENT, AGENT, HUMAN, AGENT, AGENT, AGENT]
    assert [t["step"] for t in turns] == list(range(1, MAX_TURNS + 1))
    assert [t["text"] for t in turns] == alfworld.received
    human = turns[2]
    assert human["typed"] == "go to desk 1" and human["action"] == "go to desk 1" and human["thought"] is None
    assert human["observation"].startswith("You arrive at desk 1") and human["reward"] == 0.0 and not human["invalid"]
    assert all(t["typed"] is None and set(t) >= {"thought", "action", "observation", "reward"}
               for t in turns if t["actor"] == AGENT)
    assert data["truncated"] and not data["won"] and data["human_turns"] == 1
    assert data["return"] == pytest.approx(sum(t["reward"] for t in turns))
    assert len(data["messages"]) == 2 + 2 * MAX_TURNS - 1  # system, user, then assistant/user pairs, last assistant


def test_human_plays_an_alfworld_game_to_a_win(tmp_path):
    """policy=human: bare lines are actions; the expert's plan typed in wins the game."""
    env = gym.make(ALFWORLD, split="valid", max_turns=50)
    try:
        seed = 3
        game = env.unwrapped.games[seed % len(env.unwrapped.games)]
        plan = load_walkthrough(game)  # ALFWorld's expert plan (the env has no expert_action)
        session = InteractiveSession(env, None, env_id=ALFWORLD)
        script = "\n".join(["s", *plan, "a look", "w", "n", "q"]) + "\n"
        ui, out = _ui(session, script, tmp_path)
        ui.seeds = [seed, seed + 1]
        ui.run()
        shown = out.getvalue()
        [saved] = ui.saved
        data = json.loads(saved.read_text())
        assert saved.parent == tmp_path and data["policy"] == HUMAN and data["task_id"] == game.task_id
        assert [t["typed"] for t in data["turns"]] == plan and {t["actor"] for t in data["turns"]} == {HUMAN}
        assert data["won"] and data["terminated"] and data["return"] == env.unwrapped.reward_scale
        assert data["turns"][-1]["won"] and not any(t["invalid"] for t in data["turns"])
        assert "policy=human: type an action" in shown and "Episode over: won" in shown
        assert "the episode is over" in shown  # "a look" after the win took no step
        assert session.state.seed == seed + 1 and not session.turns  # n reset to the next task
    finally:
        env.close()


def test_session_rules(tiny, alfworld, tmp_path):
    """Context overflow truncates (as in training); no steps after the end; actions by number."""
    session = InteractiveSession(alfworld, _agent(tiny, max_context_tokens=64))
    session.reset(seed=SEED)
    with pytest.raises(EpisodeOver, match="max_context_tokens"):
        session.propose()
    assert session.done and session.state.truncated
    with pytest.raises(EpisodeOver):
        session.take("<action>look</action>")
    session.reset(seed=SEED)
    acts = session.admissible_actions
    rec = session.take_typed(str(acts.index("go to desk 1") + 1))
    assert rec.action == "go to desk 1" and rec.typed == str(acts.index("go to desk 1") + 1) and not rec.invalid
    assert session.admissible_actions != acts  # kept current after the step


@pytest.mark.parametrize("entry", [["resrl_agents.play"], ["resrl_agents.eval", "mode=interactive", "env=alfworld"]])
def test_cli_human_play(entry, tmp_path):
    path = tmp_path / "t.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", *entry, "policy=human", f"output_dir={tmp_path}"],
                          input=f"a 2\n?\nw {path}\nq\n", capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Turn 1 · you" in proc.stdout and "saved" in proc.stdout
    data = json.loads(path.read_text())
    assert data["policy"] == HUMAN and [t["actor"] for t in data["turns"]] == [HUMAN]
    assert data["turns"][0]["typed"] == "2" and data["turns"][0]["action"].startswith("go to ")
