"""Hostile input (issue 14): what a model emits or a person types never stalls or stops a run, and
every mistake gets a short message that names its cause.

* the ReAct parser is linear in its input, and envs refuse over-long answers unparsed;
* the play UI, driven by scripted input, survives each crash (unwritable path, bad seed, the
  endpoint going down) with the episode kept;
* each CLI mistake ends in a few lines on stderr naming the config key.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest
from rich.console import Console

import resrl_agents.envs  # noqa: F401  (registers the env ids)
from resrl_agents.config.eval_schema import EvalConfig, PolicyConfig, ServeConfig
from resrl_agents.config.schema import EnvConfig
from resrl_agents.eval.interactive import InteractiveSession
from resrl_agents.eval.interactive_ui import QUIET_LOGGERS, PlayUI, run_interactive
from resrl_agents.rollout.policy import HFPolicy
from resrl_agents.serving.app import BackgroundServer, create_app
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


# ------------------------------------------------------------------------------------- play UI

ALFWORLD = "resrl_agents/ALFWorld-v0"


class ScriptedInput:
    """Lines a person types; a callable in the script runs (e.g. stops the server) when reached."""

    def __init__(self, script: list):
        self.script = list(script)

    def readline(self) -> str:
        while self.script and callable(self.script[0]):
            self.script.pop(0)()
        return self.script.pop(0) + "\n" if self.script else ""


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, color_system=None), out


def test_play_ui_refuses_bad_commands_and_keeps_the_episode(tmp_path, monkeypatch):
    """Each of these crashed the UI or silently did something else; now each is refused in one
    line, the env is not stepped, and the episode goes on to be saved."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    env = gym.make(ALFWORLD, split="valid", max_turns=10)
    try:
        session = InteractiveSession(env, None, env_id=ALFWORLD)
        console, out = _console()
        script = ["a 1", "w /proc/nope/x.json", "n -1", "n abc", "a 999", "w ~/x.json", "a 2",
                  f"w {tmp_path / 'final.json'}", "q"]
        ui = PlayUI(session, seeds=[0, 1], out_dir=tmp_path, stdin=ScriptedInput(script), console=console)
        ui.run()
    finally:
        env.close()
    shown = out.getvalue()
    assert "s/Enter agent turn" in shown.split("> ")[0]  # the key hint is on the first screen
    assert "cannot write /proc/nope/x.json" in shown
    assert "n [SEED]: SEED, a task seed, is a whole number >= 0, got '-1'" in shown
    assert "n [SEED]: SEED, a task seed, is a whole number >= 0, got 'abc'" in shown
    assert "no action number 999: the admissible actions are numbered 1-" in shown
    assert session.state.seed == 0 and ui.episodes == 1  # no reset happened
    assert (home / "x.json").is_file() and not (cwd / "~").exists()  # ~ is the home folder
    early = json.loads((home / "x.json").read_text())
    final = json.loads((tmp_path / "final.json").read_text())
    assert [t["typed"] for t in early["turns"]] == ["1"]  # 999 was not sent to the env
    assert [t["typed"] for t in final["turns"]] == ["1", "2"] and shown.rstrip().endswith("> q")  # ran to q


def test_play_ui_survives_the_endpoint_going_down(tiny, tiny_cfg, tmp_path):
    """policy=openai through the real client and server: the server stops mid-game, the agent's
    turn fails with one line naming policy.base_url, a person plays on, and the episode is saved.
    No httpx request lines reach the screen or the log (Hydra logs INFO to stdout in play)."""
    model, tok = tiny
    app = create_app(HFPolicy(model, tok), tok, name="tiny", cfg=ServeConfig(), context_len=4096)
    server = BackgroundServer(app)
    base_url = server.__enter__()
    cfg = EvalConfig(env=EnvConfig(name="alfworld", id=ALFWORLD, eval_kwargs={"split": "valid", "max_turns": 10}),
                     model=tiny_cfg, policy=PolicyConfig(backend="openai", base_url=base_url, model="tiny",
                                                         api_key="x", max_retries=0, timeout_s=30),
                     max_new_tokens=8, temperature=0.0, output_dir=str(tmp_path), mode="interactive")
    log, root = io.StringIO(), logging.getLogger()
    handler, level = logging.StreamHandler(log), root.level
    root.addHandler(handler), root.setLevel(logging.INFO)
    console, out = _console()
    path = tmp_path / "t.json"
    try:
        ui = run_interactive(cfg, stdin=ScriptedInput(["r abc", "s", lambda: server.__exit__(None, None, None), "s", "a 1",
                                                       f"w {path}", "q"]), console=console)
    finally:
        root.removeHandler(handler), root.setLevel(level)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        server.__exit__(None, None, None)
    shown = out.getvalue()
    assert shown.count("generating…") == 2 and "Turn 1 · agent" in shown and "Turn 2 · you" in shown
    assert f"policy.base_url={base_url}" in shown and "no connection (Connection error.); is the server up?" in shown
    assert "r [N]: N, the most turns to run, is a whole number, got 'abc'" in shown
    data = json.loads(path.read_text())
    assert [t["actor"] for t in data["turns"]] == ["agent", "human"] and ui.saved == [path]
    assert "HTTP Request" not in log.getvalue() + shown


# ------------------------------------------------------------------------------------ CLI errors

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli_model_cache")


def cli(module: str, *overrides: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", module, f"model.cache_dir={cache}", *overrides]
    if module.endswith("train"):
        cmd += ["trainer.num_threads=1", "trainer.progress=false", f"trainer.output_dir={cwd / 'run'}"]
    elif module.endswith("eval"):
        cmd += [f"output_dir={cwd / 'eval'}", "num_tasks=1", "n=1", "plots=false", "num_threads=1"]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_short_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) <= 6, proc.stderr
    assert lines[-1].startswith("error: ") and all(n in proc.stderr for n in needles), proc.stderr


@pytest.mark.parametrize("module, overrides, needles", [
    ("resrl_agents.train", ["+trainer.step=1"], ["trainer.step is not a config key", "did you mean trainer.steps?"]),
    ("resrl_agents.train", ["trainer.steps=-1"], ["trainer.steps=-1: a run trains for at least 1 step"]),
    ("resrl_agents.train", ["model.path=/nonexistent"], ["model.path=/nonexistent: folder does not exist"]),
    ("resrl_agents.eval", ["model.path=/nonexistent"], ["model.path=/nonexistent: folder does not exist"]),
    ("resrl_agents.train", ["env=tools", "env.kwargs.tools=[nope]"],
     ["env.kwargs", "tools=['nope']: 'nope' does not import (No module named 'nope')"]),
    ("resrl_agents.serve", ["serve.port=99999"], ["serve.port=99999: a TCP port is 1-65535"]),
], ids=["plus-key", "steps", "train-path", "eval-path", "tools", "port"])
def test_cli_mistakes_get_a_short_message_naming_the_key(module, overrides, needles, tmp_path, model_cache):
    assert_short_error(cli(module, *overrides, cwd=tmp_path, cache=model_cache), *needles)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing ran


def test_cli_wrong_served_model_name(tiny, tmp_path, model_cache):
    """A 404 from the endpoint names policy.model and lists what the server serves."""
    model, tok = tiny
    app = create_app(HFPolicy(model, tok), tok, name="tiny", cfg=ServeConfig(), context_len=4096)
    with BackgroundServer(app) as base_url:
        proc = cli("resrl_agents.eval", "policy=openai", f"policy.base_url={base_url}", "policy.model=nope",
                   cwd=tmp_path, cache=model_cache)
    assert_short_error(proc, "policy.model=nope", "404", "it serves ['tiny']")
