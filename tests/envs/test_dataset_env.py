"""``resrl_agents/Dataset-v0``: prompts from a file, TRL-convention reward functions, weights, the
per-function components, success, the held-out split, and clear errors for bad input. The
registry checker (tests/envs/test_checker.py) runs ``check_env`` on it through ``check_kwargs``."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import resrl_agents.envs  # noqa: F401
from resrl_agents.envs.dataset import DatasetEnv

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "dataset"

REWARDS = '''
calls = []


def exact(completions, answer, **kwargs):
    calls.append({"completions": completions, "answer": answer, **kwargs})
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [float(t.strip() == a) for t, a in zip(texts, answer)]


def length(completions, **kwargs):
    return [None if kwargs["level"][0] == "skip" else 0.01 * len(str(completions[0]))]


def broken(completions, **kwargs):
    return 1.0
'''


@pytest.fixture
def data(tmp_path) -> Path:
    rows = [{"prompt": "What is 2 + 2?", "answer": "4", "level": "easy"},
            {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "3 + 4?"}],
             "answer": "7", "level": "skip"}]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "my_rewards.py").write_text(REWARDS)
    return path


def _env(data: Path, funcs=("exact", "length"), **kw) -> DatasetEnv:
    return DatasetEnv(data, [f"{data.parent / 'my_rewards.py'}:{f}" for f in funcs], split="all", **kw)


def _play(env: DatasetEnv, index: int, action: str):
    obs, info = env.reset(options={"index": index})
    return obs, info, env.step(action)


def test_text_prompt_reward_functions_get_trl_arguments_and_are_weighted(data):
    env = _env(data, reward_weights=[2.0, 0.5], system_prompt="Answer briefly.")
    obs, info, (_, reward, terminated, truncated, step_info) = _play(env, 0, "4")
    assert obs == "What is 2 + 2?" and info["system_prompt"] == "Answer briefly." and "prompt_messages" not in info
    assert terminated and not truncated
    # exact = 1, length = 0.01 * len("4") = 0.01; total = 2 * 1 + 0.5 * 0.01
    assert step_info["reward_components"] == {"exact": 1.0, "length": 0.01}
    assert reward == pytest.approx(2.005) and step_info["won"]  # 2.005 >= success_threshold 1.0
    call = env.funcs[0][1].__globals__["calls"][-1]  # what the reward file recorded
    assert call == {"completions": ["4"], "answer": ["4"], "prompts": ["What is 2 + 2?"], "level": ["easy"]}


def test_chat_prompt_is_rendered_whole_and_completions_are_messages(data):
    env = _env(data)
    obs, info, (_, reward, _, _, step_info) = _play(env, 1, "7")
    assert obs == "3 + 4?" and "system_prompt" not in info
    assert info["prompt_messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "3 + 4?"}]
    call = env.funcs[0][1].__globals__["calls"][-1]
    assert call["completions"] == [[{"role": "assistant", "content": "7"}]]
    assert call["prompts"] == [info["prompt_messages"]]
    # length abstains (None) on level=skip: NaN component, nothing added to the total
    assert step_info["reward_components"]["exact"] == 1.0 and math.isnan(step_info["reward_components"]["length"])
    assert reward == 1.0


def test_success_threshold_defines_won(data):
    env = _env(data, success_threshold=1.5)
    assert not _play(env, 0, "4")[2][4]["won"]  # 1.01 < 1.5
    assert not _play(_env(data), 0, "5")[2][4]["won"]  # 0.01 < 1.0


def test_split_is_disjoint_and_deterministic(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{i}", "answer": str(i)}) + "\n" for i in range(200)))
    funcs = [f"{EXAMPLE / 'rewards.py'}:correct"]
    train, test, every = (DatasetEnv(path, funcs, split=s, eval_fraction=0.2) for s in ("train", "test", "all"))
    ids = lambda e: {r.task_id for r in e.rows}  # noqa: E731
    assert not ids(train) & ids(test) and ids(train) | ids(test) == ids(every) and len(ids(every)) == 200
    assert 20 < len(test.rows) < 60
    assert ids(DatasetEnv(path, funcs, split="test", eval_fraction=0.2)) == ids(test)


def test_the_bundled_example_scores_a_right_and_a_wrong_answer():
    env = gym.make("resrl_agents/Dataset-v0", path=str(EXAMPLE / "additions.jsonl"),
                   reward_funcs=[f"{EXAMPLE / 'rewards.py'}:correct", f"{EXAMPLE / 'rewards.py'}:concise"], split="all")
    obs, _ = env.reset(seed=3)
    a, b = (int(x) for x in obs.removeprefix("What is ").removesuffix("?").split(" + "))
    parts = env.step(f"{a} + {b} = {a + b}")[4]["reward_components"]
    assert parts["correct"] == 1.0 and parts["concise"] == pytest.approx(0.2 * (1 - len(f"{a} + {b} = {a + b}") / 100))
    env.reset(seed=3)
    assert env.step(f"{a + b + 1}")[4]["reward_components"]["correct"] == 0.0


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt_column": "question"}, "row 0 has no column 'question' \\(env.kwargs.prompt_column\\)"),
    ({"reward_weights": [1.0]}, "reward_weights has 1 entries for 2 reward_funcs"),
])
def test_bad_config_names_the_key(data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _env(data, **kwargs)


def test_bad_reward_specs_and_outputs_are_clear(data):
    with pytest.raises(ValueError, match="must be 'module:function'"):
        DatasetEnv(data, ["my_rewards"], split="all")
    with pytest.raises(FileNotFoundError, match="no file elsewhere/rewards.py"):
        DatasetEnv(data, ["elsewhere/rewards.py:correct"], split="all")
    with pytest.raises(ValueError, match="has no function 'nope'"):
        DatasetEnv(data, [f"{data.parent / 'my_rewards.py'}:nope"], split="all")
    with pytest.raises(ValueError, match="non-empty list"):
        DatasetEnv(data, f"{data.parent / 'my_rewards.py'}:exact", split="all")
    env = _env(data, funcs=("broken",))
    env.reset(options={"index": 0})
    with pytest.raises(TypeError, match="reward function broken returned 1.0 for one completion"):
        env.step("4")  # the agent loop records this as the episode's env error


def test_bad_prompts_and_paths_are_clear(tmp_path, data):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}) + "\n")
    with pytest.raises(ValueError, match="ending with a user message"):
        _env(bad)
    with pytest.raises(FileNotFoundError, match="env.kwargs.path"):
        _env(tmp_path / "missing.jsonl")
    csv = tmp_path / "rows.csv"
    csv.write_text("prompt\nhi\n")
    with pytest.raises(ValueError, match="is not .jsonl, .json, .parquet"):
        _env(csv)


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow installed: parquet is read")
def test_parquet_without_pyarrow_says_what_to_install(tmp_path, data):
    (tmp_path / "rows.parquet").write_bytes(b"PAR1")
    with pytest.raises(ImportError, match="needs pyarrow: pip install pyarrow"):
        _env(tmp_path / "rows.parquet")


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets installed: folders are read")
def test_saved_dataset_without_datasets_says_what_to_install(tmp_path, data):
    (tmp_path / "saved").mkdir()
    with pytest.raises(ImportError, match="needs `pip install datasets`"):
        _env(tmp_path / "saved")


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="needs the datasets package")
def test_parquet_and_saved_datasets_give_the_same_rows(tmp_path, data):
    import datasets

    rows = [json.loads(line) for line in data.read_text().splitlines()]
    ds = datasets.Dataset.from_list([{"prompt": r["prompt"] if isinstance(r["prompt"], str) else "3 + 4?",
                                      "answer": r["answer"], "level": r["level"]} for r in rows])
    ds.to_parquet(str(tmp_path / "rows.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    for path in (tmp_path / "rows.parquet", tmp_path / "saved"):
        assert [r.columns["answer"] for r in _env(path).rows] == ["4", "7"]


def test_the_env_module_does_not_import_torch(data):
    program = (f"import sys, gymnasium, resrl_agents.envs; e = gymnasium.make('resrl_agents/Dataset-v0', path={str(data)!r}, "
               f"reward_funcs=[{str(data.parent / 'my_rewards.py') + ':exact'!r}], split='all'); e.reset(seed=0); e.step('4'); "
               "print([m for m in ('torch', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
