"""``resrl_agents/ToolUse-v0``: train an agent on your own tools and questions."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from gymnasium.error import ResetNeeded

from resrl_agents.envs.base import ResetInfo, StepInfo, TextEnv, pick_task_index
from resrl_agents.envs.tool_use.answer import AnswerChecker, Match, extract_answer
from resrl_agents.envs.tool_use.examples import EXAMPLE_TASKS, EXAMPLE_TOOLS
from resrl_agents.envs.tool_use.loading import (Split, ToolSpec, ToolTask, load_tasks,
                                                load_tool_specs, select_split)
from resrl_agents.envs.verify import MathVerifier
from resrl_agents.tools import ParseResult, ToolRegistry, parse_tool_calls, render_tool_calls

DEFAULT_SYSTEM_PROMPT = (
    "Answer the user's question using the tools. The facts you need are only available through "
    "the tools: never guess them. To call a tool, write\n<tool_call>\n"
    '{"name": <tool-name>, "arguments": <args-json-object>}\n</tool_call>\n'
    "(one block per call; several blocks in one message run together). The results come back in "
    "<tool_response> blocks. When you know the answer, reply without any tool call and put the "
    "final answer alone inside <answer></answer>, e.g. <answer>42</answer>.")
FORMAT_REMINDER = ("Your message had no tool call and no final answer. Call a tool with "
                   "<tool_call>...</tool_call> or give the final answer as <answer>...</answer>.")
BUNDLED = "bundled"

# Action scripts for check_env (tests/envs/test_checker.py) on the bundled example: tool calls
# that never answer (truncated at max_turns), an immediate answer (terminated), and a message
# with no call and no answer followed by a schema-violating call (invalid, truncated).
SCRIPTED_ACTIONS: tuple[tuple[str, ...], ...] = (
    ('<tool_call>\n{"name": "list_warehouses", "arguments": {}}\n</tool_call>',),
    ("<answer>42</answer>",),
    ("I am not sure.", '<tool_call>\n{"name": "get_stock", "arguments": {"sku": 7}}\n</tool_call>'),
)


class ToolUseEnv(TextEnv):
    """
    ## Description
    One question per episode, answered with the user's tools. The agent calls tools (the
    ``hermes`` format: ``<tool_call>{"name", "arguments"}</tool_call>``), reads their results and
    ends with ``<answer>…</answer>``. Tools come from ``@tool`` functions, modules, ``.py`` files
    or JSON/YAML schemas plus an implementation module (``loading.py``); tasks from a jsonl. The
    default is the bundled example: a fictional warehouse network (stock, prices) and a
    calculator, 360 questions in six families whose answers cannot be known without the tools.

    ## Action Space
    Any ``str``: the model's message. Tool calls are read with the shared parser
    (``tools.parsers.parse_tool_calls(text, "hermes")``); the answer is the last
    ``<answer>…</answer>`` outside tool calls, used only when the message makes no call.

    ## Observation Space
    Any ``str``. ``reset``: the question; ``info`` has ``system_prompt`` and ``tools`` (OpenAI
    function schemas, rendered by the chat template). ``step`` after calls: one
    ``<tool_response>`` block per call (the result, or ``Error: …`` for an unknown tool, arguments
    that violate the schema, a tool that raised or timed out, or a malformed call), and
    ``info["observation_messages"]``, the same results as ``tool`` chat messages, which the agent
    loop appends instead of a user message (the project's template renders both identically).
    A message with neither a call nor an answer gets a format reminder as the observation.

    ## Rewards
    1.0 when the final answer matches the gold (``answer_match``, see ``answer.py``), else 0.0.
    Each invalid message (a malformed call, a call that fails validation, or neither call nor
    answer) also gives ``-format_penalty`` and ``info["invalid"] = True``; never an exception.

    ## Starting State
    ``reset(seed=s)`` draws the task from the env's RNG seeded with ``s`` (same seed, same task in
    every copy: a GRPO group); ``options={"task_id": id}`` or ``{"index": i}`` picks one.

    ## Episode End
    Terminated by a message with an answer and no tool call; truncated after ``max_turns``
    messages without one. ``step`` after the end raises ``gymnasium.error.ResetNeeded``.

    ## Arguments
    * ``tools``: tool specs (see ``loading.py``); default: the bundled warehouse tools.
    * ``tasks``: a jsonl path, a list of task dicts, or ``"bundled"`` (the example's tasks).
    * ``split`` (``train`` | ``test`` | ``all``), ``eval_fraction``, ``split_seed``: a
      deterministic per-id held-out split.
    * ``max_turns`` (6), ``answer_match`` (``auto`` | ``math`` | ``exact`` | ``contains``),
      ``format_penalty`` (0.0), ``system_prompt`` (None: the default, which asks for
      ``<tool_call>`` blocks and ``<answer>``).
    * ``timeout_s``: per tool call; ``isolation``: ``thread`` (default) or ``process`` (killable,
      needs importable tools; see ``tools/registry.py``).
    * ``verifier``: a shared math verifier (``shared_kwargs()`` returns the env's own).

    Tools that declare ``inject=("task",)`` receive a per-episode copy of the task's jsonl row
    (state as an argument, never a global; mutations last until the next reset).

    ## Version History
    * v0: initial version.
    """

    def __init__(self, tools: Sequence[ToolSpec] | ToolSpec = (EXAMPLE_TOOLS,),
                 tasks: str | Path | Sequence[Mapping[str, Any]] = BUNDLED, split: Split = "all",
                 eval_fraction: float = 0.2, split_seed: int = 0, max_turns: int = 6,
                 answer_match: Match = "auto", format_penalty: float = 0.0,
                 system_prompt: str | None = None, timeout_s: float = 10.0,
                 isolation: Literal["thread", "process"] = "thread",
                 verifier: MathVerifier | None = None, render_mode: str | None = None) -> None:
        super().__init__()
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        if not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be an int >= 1, got {max_turns!r}")
        if isolation not in ("thread", "process"):
            raise ValueError(f"isolation must be 'thread' or 'process', got {isolation!r}")
        self.render_mode, self.max_turns = render_mode, max_turns
        self.format_penalty, self.timeout_s, self.isolation = float(format_penalty), timeout_s, isolation
        self.system_prompt = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
        self.registry = ToolRegistry(load_tool_specs(tools))
        source = EXAMPLE_TASKS if isinstance(tasks, str) and tasks == BUNDLED else tasks
        self.tasks = select_split(load_tasks(source), split, eval_fraction, split_seed)
        self._index = {t.task_id: i for i, t in enumerate(self.tasks)}
        self._owns_verifier = verifier is None
        self.verifier = MathVerifier() if verifier is None else verifier
        self.checker = AnswerChecker(answer_match, self.verifier)
        self._task: ToolTask | None = None
        self._done = True
        self._transcript: list[str] = []

    # ------------------------------------------------------------------------------- reset

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        i = pick_task_index(options, len(self.tasks), self.np_random, self._index.get)
        task = self._task = self.tasks[i]
        self._turns, self._tool_steps, self._done, self._last_reward = 0, 0, False, 0.0
        self._context = {"task": copy.deepcopy(dict(task.record))}
        self._transcript = [f"user: {task.question}"]
        info: ResetInfo = {"task_id": task.task_id, "task": task.question, "family": task.family,
                           "system_prompt": self.system_prompt}
        return task.question, {**info, "tools": self.registry.schemas()}

    # ------------------------------------------------------------------------------- step

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done or self._task is None:
            raise ResetNeeded("ToolUseEnv episode has ended; call reset() before step()")
        self._turns += 1
        self._transcript.append(f"assistant: {action}")
        parsed = parse_tool_calls(action, "hermes")
        info: dict[str, Any] = {**StepInfo(won=False, invalid=bool(parsed.errors))}
        if parsed.calls or parsed.errors:
            return self._run_calls(parsed, info)
        answer = extract_answer(parsed.content)
        if answer is None:
            info["invalid"] = True
            return self._continue(FORMAT_REMINDER, info)
        won, details = self.checker.check(self._task.answer, answer)
        info.update(won=won, answer=answer, gold=self._task.answer, **details)
        return self._end("", 1.0 if won else 0.0, True, False, info)

    def _run_calls(self, parsed: ParseResult, info: dict[str, Any]):
        """Execute every call (failures become the call's response) and show the results."""
        self._tool_steps += 1
        invalid = [c for c in parsed.calls if self.registry.validate(c) is not None]
        results = [self.registry.execute(c, timeout_s=self.timeout_s, context=self._context,
                                         isolation=self.isolation) for c in parsed.calls]
        messages = [{"role": "tool", "name": r.name, "content": r.content,
                     **({"tool_call_id": r.call_id} if r.call_id else {})} for r in results]
        messages += [{"role": "tool", "name": "parser", "content": f"Error: {e}"} for e in parsed.errors]
        info["invalid"] = bool(parsed.errors or invalid)
        info["tool_errors"] = sum(not r.ok for r in results) + len(parsed.errors)
        if parsed.errors:
            info["parse_errors"] = list(parsed.errors)
        info["observation_messages"] = messages
        obs = "\n".join(f"<tool_response>\n{m['content']}\n</tool_response>" for m in messages)
        return self._continue(obs, info)

    def _continue(self, obs: str, info: dict[str, Any]):
        truncated = self._turns >= self.max_turns
        return self._end(obs, 0.0, False, truncated, info)

    def _end(self, obs: str, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]):
        reward -= self.format_penalty if info["invalid"] else 0.0
        self._done = terminated or truncated
        self._last_reward = float(reward)
        if obs:
            self._transcript.append(f"tool/user: {obs}")
        return obs, float(reward), terminated, truncated, info

    # ------------------------------------------------------------------------------- expert

    def expert_action(self) -> str | None:
        """The next step of the task's plan (its tool calls in hermes format), then the gold
        answer; None when the task has no plan (``calls`` absent from its row)."""
        task = self._task
        if task is None or self._done or task.calls is None:
            return None
        if self._tool_steps < len(task.calls):
            return render_tool_calls(task.calls[self._tool_steps], "hermes")
        return f"<answer>{task.answer}</answer>"

    # ------------------------------------------------------------------------------- misc

    @property
    def task(self) -> ToolTask | None:
        """The current episode's task (None before the first reset)."""
        return self._task

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._task is None:
            return None
        return "\n".join(self._transcript + [f"reward: {self._last_reward}"])

    def shared_kwargs(self) -> dict[str, Any]:
        return {"verifier": self.verifier}

    def close(self) -> None:
        if self._owns_verifier:
            self.verifier.close()
        super().close()
