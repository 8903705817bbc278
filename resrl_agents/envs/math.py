"""Single-turn math env: one question, one answer, reward 1 if math-verify accepts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gymnasium.error import ResetNeeded

from resrl_agents.envs.base import ResetInfo, StepInfo, TextEnv, pick_task_index
from resrl_agents.envs.math_tasks import MathTask, Split, make_tasks
from resrl_agents.envs.verify import MathVerifier

DEFAULT_SYSTEM_PROMPT = "Solve the problem. Put the final answer on the last line after '####'."

# Action scripts for ``check_env`` (tests/envs/test_checker.py): any text ends the episode.
SCRIPTED_ACTIONS: tuple[tuple[str, ...], ...] = (("#### 82",), ("I do not know.",))


class MathEnv(TextEnv):
    """
    ## Description
    One math problem per episode (arithmetic or worked chains generated in-package, GSM8K, or any
    ``{"question", "answer"}`` jsonl). The agent answers once; math-verify compares the answer
    with the gold. The warm-start task (difficulty 1) is 2-digit addition: "What is 37 + 45?".
    ``source="chain"`` asks for + / - chains ("What is 7 + 5 - 3 + 8?") whose expert answer
    shows one line per step before the final answer, so answers are 20-60 tokens long.

    ## Action Space
    Any ``str``: the model's full answer. The final answer is read after the last ``####`` when
    present (first line only), otherwise math-verify extracts it from the whole text (``\\boxed{}``,
    "The answer is 82.", the last number).

    ## Observation Space
    Any ``str``. ``reset`` returns the question text; the answer-format instruction is in
    ``info["system_prompt"]`` (rendered as the system message). ``step`` returns ``""``.

    ## Rewards
    1.0 if the answer equals the gold (math-verify: 82 = 82.0, 0.5 = 1/2 = \\frac{1}{2},
    70,000 = 70000), else 0.0. A verifier timeout scores 0.0 with ``info["timeout"] = True``.

    ## Starting State
    ``reset(seed=s)`` draws the task index from the env's RNG seeded with ``s``: the same seed gives
    the same task in every copy (a GRPO group). ``options={"task_id": id}`` or
    ``{"index": i}`` picks a task explicitly.

    ## Episode End
    Terminated after the single step (``max_turns = 1``); never truncated. Stepping again before
    ``reset`` raises ``gymnasium.error.ResetNeeded``.

    ## Arguments
    * ``source``: ``"arithmetic"`` | ``"chain"`` | ``"gsm8k"`` | path to a jsonl (see ``make_tasks``).
    * ``difficulty``, ``size``, ``seed``: arithmetic generator settings (``seed`` picks the task
      list, not the episode; ``size`` also caps jsonl sources).
    * ``split``: ``"train"`` | ``"test"`` (disjoint).
    * ``data_path``: GSM8K folder or file (required for ``source="gsm8k"``).
    * ``system_prompt``: answer-format instruction placed in ``info["system_prompt"]``.
    * ``timeout_s``: per-answer verification timeout of the env's own verifier.
    * ``verifier``: a shared :class:`MathVerifier`; when given the env borrows it (``close`` leaves
      it running) and ``timeout_s`` is unused. ``env.shared_kwargs()`` returns it, so G copies
      built with ``gymnasium.make(id, **kw, **first.unwrapped.shared_kwargs())`` use one worker.

    ## Version History
    * v0: initial version (``source="chain"`` added later; the other sources are unchanged).
    """

    max_turns = 1

    def __init__(self, source: str = "arithmetic", difficulty: int = 1, split: Split = "train",
                 data_path: str | Path | None = None, size: int = 10000, seed: int = 0,
                 system_prompt: str = DEFAULT_SYSTEM_PROMPT, timeout_s: float = 5.0,
                 verifier: MathVerifier | None = None, render_mode: str | None = None) -> None:
        super().__init__()
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.tasks = make_tasks(source, split=split, difficulty=difficulty, size=size, seed=seed,
                                data_path=data_path)
        self.system_prompt = system_prompt
        self._owns_verifier = verifier is None
        self.verifier = MathVerifier(timeout_s=timeout_s) if verifier is None else verifier
        self._task: MathTask | None = None
        self._done = True
        self._last_answer: str | None = None
        self._last_reward = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        i = pick_task_index(options, len(self.tasks), self.np_random, self.tasks.index_of)
        self._task = self.tasks.get(i)
        self._done, self._last_answer, self._last_reward = False, None, 0.0
        info: ResetInfo = {"task_id": self._task.task_id, "task": self._task.question,
                           "family": self._task.family, "system_prompt": self.system_prompt}
        return self._task.question, dict(info)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done or self._task is None:
            raise ResetNeeded("MathEnv episode has ended (single turn); call reset() before step()")
        won, verdict = self.verifier.score(self._task.answer, action)
        self._done, self._last_answer = True, action
        self._last_reward = 1.0 if won else 0.0
        # invalid: no answer could be extracted at all (a format failure, not a wrong answer)
        info: StepInfo = {"won": won, "invalid": not verdict["parsed"] and not verdict["timeout"]}
        extra = {"gold": self._task.answer, "parsed": verdict["parsed"], "timeout": verdict["timeout"]}
        if verdict["error"]:
            extra["error"] = verdict["error"]
        return "", self._last_reward, True, False, {**info, **extra}

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._task is None:
            return None
        answer = "(no answer yet)" if self._last_answer is None else self._last_answer
        return f"Q: {self._task.question}\nA: {answer}\nreward: {self._last_reward}"

    def expert_action(self) -> str | None:
        """The gold answer in the format the system prompt asks for, after the task's worked steps
        when it has them (``source="chain"``)."""
        if self._task is None or self._done:
            return None
        steps = f"{self._task.solution}\n" if self._task.solution else ""
        return f"{steps}#### {self._task.answer}"

    def shared_kwargs(self) -> dict[str, Any]:
        return {"verifier": self.verifier}

    def close(self) -> None:
        if self._owns_verifier:
            self.verifier.close()
        super().close()
