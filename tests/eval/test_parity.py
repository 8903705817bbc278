"""One episode run three ways gives identical actions: the training rollout (RLRecipe), eval with
the local HF policy, and eval through the served endpoint with the `openai` client. Envs: math
(full history), BFCL (the episode's tools go to the template, and to the server as OpenAI tools),
ALFWorld (multi-turn, window layout) when registered."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import gymnasium as gym
import pytest

from resrl_agents.config.eval_schema import EvalConfig, PolicyConfig, ServeConfig
from resrl_agents.config.schema import EnvConfig, RolloutConfig, TrainConfig, TrainerConfig
from resrl_agents.eval.runner import run_eval
from resrl_agents.rollout.policy import HFPolicy
from resrl_agents.serving.app import BackgroundServer, create_app
from resrl_agents.trainers.recipe import RLRecipe

KEY = "parity-key"
MAX_NEW = 24


ALFWORLD_ID = "resrl_agents/ALFWorld-v0"


def math_env() -> EnvConfig:
    return EnvConfig(name="math", id="resrl_agents/Math-v0", kwargs={"source": "arithmetic", "split": "test"})


def bfcl_env() -> EnvConfig:
    return EnvConfig(name="bfcl", id="resrl_agents/BFCL-v0",
                     kwargs={"categories": ["simple_python"], "split": "eval", "eval_fraction": 0.2,
                             "format": "hermes", "tools_in_prompt": False})


def alfworld_env() -> EnvConfig:
    return EnvConfig(name="alfworld", id=ALFWORLD_ID, kwargs={"split": "valid", "max_turns": 4})


@pytest.fixture(scope="module")
def endpoint(tiny):
    model, tok = tiny
    app = create_app(HFPolicy(model, tok), tok, name="tiny", cfg=ServeConfig(api_key=KEY), context_len=4096)
    with BackgroundServer(app) as base_url:
        yield base_url


def training_episode(tiny_cfg, out: Path, env: EnvConfig, history: str = "full"):
    cfg = TrainConfig(env=env, model=tiny_cfg,
                      rollout=RolloutConfig(group_size=1, prompts_per_step=1, max_new_tokens=MAX_NEW,
                                            temperature=0.0, history=history, drift_check_frac=0.0),
                      trainer=TrainerConfig(output_dir=str(out), tensorboard=False, progress=False, device="cpu",
                                            warmup_steps=0))
    recipe = RLRecipe(cfg)
    recipe.setup()
    try:
        [traj] = recipe._rollout_round(step=0, round_=0)  # the exact rollout of training step 0
    finally:
        recipe.cleanup()
    return traj


def eval_episodes(tiny_cfg, out: Path, seed: int, temperature: float, policy: PolicyConfig,
                  env: EnvConfig | None = None, history: str = "full") -> list[dict]:
    cfg = EvalConfig(env=env or math_env(), model=tiny_cfg, policy=policy, n=1, task_seeds=[seed], seed=5,
                     temperature=temperature, top_p=1.0, max_new_tokens=MAX_NEW, history=history, device="cpu",
                     output_dir=str(out), plots=False)
    report = run_eval(cfg)
    [run] = report["runs"]
    return [json.loads(line) for line in (out / f"episodes_{run['name']}.jsonl").read_text().splitlines()]


def served(base_url: str, send_seed: bool = False) -> PolicyConfig:
    return PolicyConfig(backend="openai", base_url=base_url, model="tiny", api_key=KEY, send_seed=send_seed)


@pytest.mark.parametrize("make_env", [math_env, bfcl_env])
def test_greedy_episode_is_identical_three_ways(tiny_cfg, endpoint, tmp_path, make_env):
    env = make_env()
    train = training_episode(tiny_cfg, tmp_path / "train", env)
    [local] = eval_episodes(tiny_cfg, tmp_path / "local", train.seed, 0.0, PolicyConfig(backend="hf"), env)
    [remote] = eval_episodes(tiny_cfg, tmp_path / "remote", train.seed, 0.0, served(endpoint), env)
    if env.name == "bfcl":
        assert train.tools and "<tools>" in train.turns[0].obs_text  # the tools path is exercised
    train_actions = [t.action_text for t in train.turns]
    assert train_actions and train_actions[0]
    assert local["task_id"] == remote["task_id"] == train.task_id
    assert local["actions"] == remote["actions"] == train_actions
    assert local["reward"] == remote["reward"] == train.reward
    assert local["messages"] == remote["messages"] == list(train.messages)


@pytest.mark.parametrize("make_env", [math_env, bfcl_env])
def test_sampled_episode_is_identical_local_and_served(tiny_cfg, endpoint, tmp_path, make_env):
    """Same seed, temperature 1: with ``send_seed`` the served request carries the rollout's seed,
    so even sampling reproduces the local episode (a stronger check than greedy on an untrained model)."""
    [local] = eval_episodes(tiny_cfg, tmp_path / "local", 3, 1.0, PolicyConfig(backend="hf"), make_env())
    [remote] = eval_episodes(tiny_cfg, tmp_path / "remote", 3, 1.0, served(endpoint, send_seed=True), make_env())
    assert local["actions"] == remote["actions"] and len(set(local["actions"][0])) > 3  # varied text


@pytest.mark.alfworld
def test_greedy_alfworld_episode_is_identical_three_ways(tiny_cfg, endpoint, tmp_path, monkeypatch):
    """Multi-turn: ALFWorld with verl-agent's per-turn window layout, 4 turns, three ways."""
    if importlib.util.find_spec("alfworld") is None or ALFWORLD_ID not in gym.registry:
        pytest.skip(f"{ALFWORLD_ID} needs the alfworld extra and its registration in resrl_agents.envs")
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path / "alfworld_data"))  # alfworld writes here on import
    env, history = alfworld_env(), "window:2"
    train = training_episode(tiny_cfg, tmp_path / "train", env, history)
    [local] = eval_episodes(tiny_cfg, tmp_path / "local", train.seed, 0.0, PolicyConfig(backend="hf"), env, history)
    [remote] = eval_episodes(tiny_cfg, tmp_path / "remote", train.seed, 0.0, served(endpoint), env, history)
    train_actions = [t.action_text for t in train.turns]
    assert len(train_actions) == 4
    assert local["actions"] == remote["actions"] == train_actions
    assert local["reward"] == remote["reward"] == train.reward
