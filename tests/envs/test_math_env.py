"""Math tasks, the math-verify worker and MathEnv, driven with real answers (no mocks)."""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import warnings

import gymnasium as gym
import pytest
from gymnasium.error import ResetNeeded

import resrl_agents.envs  # noqa: F401  (registers the ids)
from resrl_agents.envs.math import DEFAULT_SYSTEM_PROMPT, MathEnv
from resrl_agents.envs.math_tasks import ArithmeticTasks, ChainTasks, GSM8KTasks, gold_from_solution, make_tasks, worked_steps
from resrl_agents.envs.verify import MathVerifier, prepare_answer, prepare_gold

HANGS_SYMPY = "\\boxed{9^{9^{9^{9}}}}"  # math-verify never returns on this (checked: > 120 s)


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(timeout_s=5.0) as v:
        yield v


# ---------------------------------------------------------------------------------------------
# tasks


def _questions(src) -> list[str]:
    return [src.get(i).question for i in range(len(src))]


def test_arithmetic_is_deterministic_and_answers_are_right():
    for difficulty in range(4):
        a, b = ArithmeticTasks(difficulty, size=300), ArithmeticTasks(difficulty, size=300)
        assert [a.get(i) for i in range(len(a))] == [b.get(i) for i in range(len(b))]
        for i in range(len(a)):
            task = a.get(i)
            expr = re.fullmatch(r"What is ([\d\s+\-*()]+)\?", task.question).group(1)
            assert int(task.answer) == eval(expr), task  # our own generated digits/operators only


def test_arithmetic_difficulty_levels():
    warm = ArithmeticTasks(difficulty=1, size=200)
    assert all(re.fullmatch(r"What is [1-9]\d \+ [1-9]\d\?", q) for q in _questions(warm))
    assert len(ArithmeticTasks(difficulty=0, split="train")) + len(ArithmeticTasks(difficulty=0, split="test")) == 55
    assert {ArithmeticTasks(2, size=500).get(i).family for i in range(500)} == {"add", "sub", "mul"}
    words = ArithmeticTasks(difficulty=4, size=500)
    assert len({words.get(i).family for i in range(500)}) == 6
    assert all(int(words.get(i).answer) >= 0 for i in range(500))
    with pytest.raises(ValueError, match="difficulty"):
        ArithmeticTasks(difficulty=5)


def test_train_and_test_are_disjoint_up_to_operand_order():
    def canon(q: str) -> str:
        m = re.fullmatch(r"What is (\d+) ([+*]) (\d+)\?", q)
        return f"{min(m[1], m[3], key=int)}{m[2]}{max(m[1], m[3], key=int)}" if m else q

    for difficulty in (0, 1, 2, 4):
        train = {canon(q) for q in _questions(ArithmeticTasks(difficulty, size=3000, split="train"))}
        test = {canon(q) for q in _questions(ArithmeticTasks(difficulty, size=3000, split="test"))}
        assert train and test and not train & test


def test_task_lookup_by_id():
    src = ArithmeticTasks(difficulty=1, size=100)
    assert src.index_of(src.get(42).task_id) == 42
    with pytest.raises(KeyError):
        src.index_of("nope")


def test_worked_steps_by_hand():
    # 23 + 48 = 71, then 71 - 17 = 54
    assert worked_steps("23 + 48 - 17") == "23+48=71\n71-17=54"


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_chain_tasks_show_right_steps_and_stay_held_out(difficulty):
    train, test = ChainTasks(difficulty, size=2000), ChainTasks(difficulty, size=500, split="test")
    assert _questions(train) == _questions(ChainTasks(difficulty, size=2000))  # deterministic
    assert not set(_questions(train)) & set(_questions(test))
    for src in (train, test):
        for i in range(len(src)):
            t = src.get(i)
            expr = t.question.removeprefix("What is ").removesuffix("?")
            assert int(t.answer) == eval(expr) and t.family == "chain"  # + and - only: left to right
            lines = t.solution.split("\n")
            assert len(lines) == (2 if difficulty == 2 else 3) and lines[-1].endswith(f"={t.answer}")
            totals = [int(x.split("=")[1]) for x in lines]
            assert min(totals) >= 0 and (difficulty > 1 or max(totals) <= 99)
    with pytest.raises(ValueError, match="chain difficulty"):
        ChainTasks(difficulty=4)


def test_chain_expert_shows_work_and_is_rewarded():
    env = gym.make("resrl_agents/Math-v0", source="chain", split="test")
    obs, _ = env.reset(seed=3)
    task = env.unwrapped._task
    action = env.unwrapped.expert_action()
    assert action == f"{task.solution}\n#### {task.answer}" and obs == task.question
    assert env.step(action)[1] == 1.0
    env.close()


def test_gsm8k_tasks(shared_data):
    src = make_tasks("gsm8k", split="test", data_path=shared_data / "gsm8k")
    assert len(src) == 1319
    assert src.get(0).answer == "18" and src.get(2).answer == "70000"  # "#### 70000"
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", src.get(i).answer) for i in range(len(src)))
    assert src.get(0).family == "gsm8k" and src.get(0).task_id == "gsm8k-test-00000"
    assert len(GSM8KTasks(shared_data / "gsm8k" / "train.jsonl", size=10)) == 10


def test_make_tasks_errors_and_jsonl(tmp_path):
    with pytest.raises(ValueError, match="data_path"):
        make_tasks("gsm8k")
    with pytest.raises(ValueError, match="unknown task source"):
        make_tasks("mmlu")
    path = tmp_path / "fracs.jsonl"
    path.write_text(json.dumps({"question": "What is 3 divided by 4?", "answer": "3/4"}) + "\n")
    src = make_tasks(str(path))
    assert len(src) == 1 and src.get(0).answer == "3/4" and src.get(0).family == "fracs"
    assert gold_from_solution("so 1,000 + 234\n#### 1,234") == "1234"


# ---------------------------------------------------------------------------------------------
# verifier


def test_prepare_helpers():
    assert prepare_gold("70,000") == "$70000$" and prepare_gold("\\frac{1}{2}") == "\\frac{1}{2}"
    assert prepare_answer("37 + 45 = 82\n#### 82 apples\nbye") == "82 apples"
    assert prepare_answer("no marker 82") == "no marker 82"


@pytest.mark.parametrize("answer", ["82", "The answer is 82.", "\\boxed{82}", "#### 82",
                                    "37 + 45 = 82\n#### 82", "82.0", "#### $82", "x = 82"])
def test_right_answers(verifier, answer):
    ok, info = verifier.score("82", answer)
    assert ok and info == {"timeout": False, "parsed": info["parsed"], "error": None}


@pytest.mark.parametrize("answer", ["83", "#### 83", "#### 82.5", "The answer is 28.", "\\boxed{-82}",
                                    "#### 82\n#### 81", ""])
def test_wrong_answers(verifier, answer):
    ok, info = verifier.score("82", answer)
    assert not ok and not info["timeout"]


@pytest.mark.parametrize("gold, answer, expected", [
    ("0.5", "1/2", True), ("0.5", "\\frac{1}{2}", True), ("0.5", "#### 0.50", True),
    ("0.5", "#### 0.49", False), ("3/4", "#### 0.75", True), ("2.5", "\\boxed{\\frac{5}{2}}", True),
    ("70000", "#### 70,000", True), ("70,000", "$70,000", True), ("-5", "#### -5", True),
    ("-5", "#### 5", False),
])
def test_floats_fractions_commas(verifier, gold, answer, expected):
    assert verifier.score(gold, answer)[0] is expected


def test_gsm8k_solutions_score(verifier, shared_data):
    rows = [json.loads(line) for line in (shared_data / "gsm8k" / "test.jsonl").open()][:25]
    pairs = []
    for row in rows:
        gold = gold_from_solution(row["answer"])
        wrong = str(int(float(gold)) + 1)
        pairs += [(gold, row["answer"]), (gold, f"#### {gold}"), (gold, f"{int(float(gold)):,}"), (gold, f"#### {wrong}")]
    results = verifier.score_many(pairs)
    assert [ok for ok, _ in results] == [True, True, True, False] * len(rows)


def test_timeout_kills_and_restarts_worker():
    with MathVerifier(timeout_s=1.0) as v:
        assert v.score("1", "1")[0]
        pid = v.worker_pid
        start = time.monotonic()
        results = v.score_many([("1", "1"), ("82", HANGS_SYMPY), ("2", "#### 2")])
        assert time.monotonic() - start < 10
        assert [ok for ok, _ in results] == [True, False, True]
        assert results[1][1]["timeout"] and not results[2][1]["timeout"]
        assert v.restarts == 1 and v.worker_pid != pid
        with pytest.raises(ProcessLookupError):  # the stuck worker is really gone
            os.kill(pid, 0)


def test_orphaned_worker_kills_itself():
    """The worker's SIGALRM backstop ends a stuck parse even when no parent is watching."""
    proc = subprocess.Popen([sys.executable, "-m", "resrl_agents.envs.verify", "1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert json.loads(proc.stdout.readline()) == {"ready": True}
    proc.stdin.write((json.dumps([["82", HANGS_SYMPY]]) + "\n").encode())
    proc.stdin.flush()
    assert proc.wait(timeout=30) == -signal.SIGALRM
    proc.stdin.close()
    proc.stdout.close()


def test_worker_crash_is_recovered(verifier):
    assert verifier.score("5", "5")[0]
    os.kill(verifier.worker_pid, signal.SIGKILL)
    time.sleep(0.2)
    assert verifier.score("6", "#### 6")[0]


def test_scoring_from_threads(verifier):
    """math-verify's signal-based timeout fails off the main thread; ours must not."""
    results: dict[int, bool] = {}

    def work(i: int) -> None:
        results[i] = verifier.score(str(i), f"#### {i}")[0] and not verifier.score(str(i), f"#### {i + 1}")[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: True for i in range(8)}


def test_copy_and_pickle(verifier):
    assert copy.deepcopy(verifier) is verifier  # gymnasium deep-copies env.spec kwargs
    clone = pickle.loads(pickle.dumps(verifier))  # e.g. sent to a vector-env subprocess
    assert clone is not verifier and clone.timeout_s == verifier.timeout_s and clone.worker_pid is None


def test_close_then_reuse():
    v = MathVerifier()
    assert v.score("2", "2")[0]
    v.close()
    assert v.worker_pid is None
    assert v.score("3", "3")[0]  # restarts on demand
    v.close()


# ---------------------------------------------------------------------------------------------
# env


def test_env_episode(verifier):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the passive env checker must have nothing to say
        env = gym.make("resrl_agents/Math-v0", verifier=verifier)
        assert env.spec.kwargs["verifier"] is verifier
        obs, info = env.reset(seed=3)
        task = env.unwrapped.tasks.get(env.unwrapped.tasks.index_of(info["task_id"]))
        assert obs == task.question == info["task"] and info["family"] == "add"
        assert info["system_prompt"] == DEFAULT_SYSTEM_PROMPT
        obs2, reward, terminated, truncated, step_info = env.step(f"Adding gives it.\n#### {task.answer}")
    assert (obs2, reward, terminated, truncated) == ("", 1.0, True, False)
    assert step_info["won"] and not step_info["invalid"] and step_info["gold"] == task.answer
    with pytest.raises(ResetNeeded):
        env.step("#### 1")
    env.reset(seed=3)
    assert env.step(f"#### {int(task.answer) + 1}")[1:3] == (0.0, True)
    env.reset(seed=3)
    _, reward, _, _, step_info = env.step("I do not know.")
    assert reward == 0.0 and step_info["invalid"] and not step_info["won"]
    env.close()


def test_seeds_and_options(verifier):
    a = MathEnv(verifier=verifier)
    b = MathEnv(**a.shared_kwargs())
    assert b.verifier is verifier
    assert a.reset(seed=7) == b.reset(seed=7)
    assert len({a.reset(seed=s)[0] for s in range(20)}) > 10
    third = a.tasks.get(3)
    assert a.reset(seed=0, options={"index": 3})[0] == third.question
    assert a.reset(options={"task_id": third.task_id})[1]["task_id"] == third.task_id
    with pytest.raises(ValueError, match="unknown reset options"):
        a.reset(options={"idx": 1})
    with pytest.raises(IndexError):
        a.reset(options={"index": len(a.tasks)})
    with pytest.raises(ResetNeeded):
        MathEnv(verifier=verifier).step("#### 1")


def test_render_ansi(verifier):
    env = MathEnv(verifier=verifier, render_mode="ansi")
    env.reset(seed=0, options={"index": 0})
    env.step("#### 1")
    assert env.render().startswith(f"Q: {env.tasks.get(0).question}\nA: #### 1")


def test_verifier_ownership():
    owner = MathEnv()
    borrower = MathEnv(**owner.shared_kwargs())
    borrower.reset(seed=1)
    assert borrower.step("#### 0")[4]["timeout"] is False
    pid = owner.verifier.worker_pid
    borrower.close()
    assert owner.verifier.worker_pid == pid  # a borrower leaves the shared worker running
    owner.close()
    assert owner.verifier.worker_pid is None


def test_gsm8k_env(verifier, shared_data):
    env = gym.make("resrl_agents/Math-v0", source="gsm8k", split="test", data_path=str(shared_data / "gsm8k"),
                   verifier=verifier)
    row = json.loads((shared_data / "gsm8k" / "test.jsonl").open().readline())
    obs, info = env.reset(options={"index": 0})
    assert obs == row["question"] and info["family"] == "gsm8k"
    assert env.step(row["answer"])[1] == 1.0  # the reference solution, ending "#### 18"


def test_hydra_env_config(verifier):
    from hydra import compose, initialize_config_module

    from resrl_agents.config.schema import EnvConfig, register_configs

    register_configs()
    with initialize_config_module("resrl_agents.config", version_base="1.3"):
        cfg = compose(overrides=["+env=math", "env.kwargs.difficulty=2"]).env
    assert isinstance(cfg, EnvConfig) or cfg._metadata.object_type is EnvConfig
    train = gym.make(cfg.id, **cfg.kwargs, verifier=verifier)
    test = gym.make(cfg.id, **{**cfg.kwargs, **cfg.eval_kwargs}, verifier=verifier)
    train_q = {train.reset(seed=s)[0] for s in range(50)}
    test_q = {test.reset(seed=s)[0] for s in range(50)}
    assert train.unwrapped.tasks is not test.unwrapped.tasks and not train_q & test_q
    assert {train.reset(seed=s)[1]["family"] for s in range(50)} == {"add", "sub", "mul"}
