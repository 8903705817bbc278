"""BFCL (Berkeley Function Calling Leaderboard v4) as a text env: single-turn AST categories and
the multi-turn categories, scored by BFCL's own checkers in an isolated worker process."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal, Sequence

from gymnasium.error import ResetNeeded

from resrl_agents.envs.base import ResetInfo, StepInfo, TextEnv, pick_task_index
from resrl_agents.envs.bfcl.data import (ANY_CALL_EXPECTED, MULTI_TURN, NO_CALL_EXPECTED,
                                         BFCLTask, Split, TaskList, add_language_hint,
                                         expand_categories, load_tasks,
                                         multi_turn_answer_calls, sanitize_name,
                                         single_turn_answer_calls, to_openai_tool)
from resrl_agents.envs.bfcl.reward import toolrl_reward
from resrl_agents.envs.bfcl.pool import BFCLWorkerPool, Call, Session
from resrl_agents.tools.parsers import ParseResult, ToolCall, parse_tool_calls, render_tool_calls

# BFCL's default prompting system prompt (constants/default_prompts.py: classic style, plaintext,
# python return format, JSON function docs). The pythonic format uses it verbatim.
PERSONA = "You are an expert in composing functions."
TASK = ("You are given a question and a set of possible functions. Based on the question, you will "
        "need to make one or more function/tool calls to achieve the purpose. If none of the "
        "functions can be used, point it out. If the given question lacks the parameters required "
        "by the function, also point it out.")
CALL_FORMAT = ("You should only return the function calls in your response.\n\nIf you decide to "
               "invoke any of the function(s), you MUST put it in the format of {output_format}. "
               "{param_types} You SHOULD NOT include any other text in the response.")
PYTHONIC_OUTPUT = ("[func_name1(params_name1=params_value1, params_name2=params_value2...), "
                   "func_name2(params)]")
HERMES_OUTPUT = ('<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
                 "</tool_call>, one such block per call")
MULTITURN = ("At each turn, you should try your best to complete the tasks requested by the user "
             "within the current turn. Continue to output functions to call until you have "
             "fulfilled the user's request to the best of your ability. Once you have no more "
             "functions to call, the system will consider the current turn complete and proceed to "
             "the next turn or task.")
AVAILABLE = "Here is a list of functions in json format that you can invoke.\n{functions}\n"
ADDED_FUNCTIONS = "{functions}\nI have updated some more functions you can choose from. What about now?"
MAX_STEPS_PER_TURN = 20  # BFCL's MAXIMUM_STEP_LIMIT: the 21st call step of a turn force-quits
NO_CALL_ANSWER = "None of the provided functions can be used for this request."
END_OF_TURN = "Done."
Format = Literal["hermes", "pythonic"]

# Action scripts for check_env (tests/envs/test_checker.py): a call that never ends a turn (so
# multi-turn episodes are truncated at max_turns), and a plain answer that ends every turn.
SCRIPTED_ACTIONS: tuple[tuple[str, ...], ...] = (
    ('<tool_call>\n{"name": "ls", "arguments": {"a": true}}\n</tool_call>',),
    ("I cannot help with that.",),
)


def check_kwargs(shared_data: Path) -> dict[str, Any] | None:
    """check_env kwargs: BFCL data comes with ``bfcl_eval`` (None: not installed, skip)."""
    import importlib.util

    if importlib.util.find_spec("bfcl_eval") is None:
        return None
    return {"categories": ["simple_python", "multi_turn_base"], "max_turns": 6}


class BFCLEnv(TextEnv):
    """
    ## Description
    One BFCL v4 entry per episode. Single-turn categories (simple_python/java/javascript,
    multiple, parallel, parallel_multiple, irrelevance, live_*) ask for one answer of function
    calls; multi-turn categories (multi_turn_base, _miss_func, _miss_param, _long_context) run a
    conversation of several user turns against BFCL's stateful backends (file system, messaging,
    trading, travel, vehicle, twitter, tickets, math).

    ## Action Space
    Any ``str``. Calls are read with the shared parser (``resrl_agents.tools.parsers``) in
    ``format``: ``hermes`` (``<tool_call>{"name", "arguments"}</tool_call>`` blocks) or
    ``pythonic`` (BFCL's ``[f(a=1), g(b='x')]``; keyword arguments only).

    ## Observation Space
    Any ``str``. ``reset``: the user question; ``info`` has ``system_prompt`` (BFCL's instructions
    and, with ``tools_in_prompt``, the function docs) and ``tools`` (OpenAI function schemas with
    JSON-Schema parameters, for chat templates that render tools). Multi-turn ``step``: the
    execution results (hermes: ``<tool_response>`` blocks; pythonic: BFCL's ``repr`` of tool
    messages), or the next user turn once the model answers without calls. In miss_func the turn
    that adds held-out functions shows their docs, and step ``info["tools"]`` is updated.

    ## Rewards
    ``binary``: 1.0 if BFCL's checker accepts the episode (AST checker; irrelevance: no call and
    no malformed call; live_relevance: any call; multi-turn: state and response checker), else 0.
    ``dense``: single-turn, ToolRL's format + correctness reward in [-3, 4] (``reward.py``);
    multi-turn, the fraction of user turns that pass before the first failing one. ``info["won"]``
    is always BFCL's verdict. Malformed output: ``info["invalid"] = True``, never an exception.

    ## Starting State
    ``reset(seed=s)`` draws the entry from the env's RNG seeded with ``s``; ``options={"task_id":
    id}`` or ``{"index": i}`` picks one. Backends start from the entry's ``initial_config``.

    ## Episode End
    Single-turn: terminated after one step. Multi-turn: terminated after the last user turn
    (scored) or when one user turn exceeds ``max_steps_per_turn`` call steps (BFCL's force quit,
    failed); truncated at ``max_turns`` agent steps.

    ## Arguments
    * ``categories``: BFCL categories or groups (``single_turn``, ``multi_turn``, ``live``,
      ``non_live``, ``all``). ``split`` / ``eval_fraction`` / ``split_seed``: a deterministic
      per-id split inside each category (``split="all"`` keeps everything).
    * ``format``, ``sanitize_names`` (default: True for hermes; "." -> "_" in names, mapped back
      before scoring, as BFCL's FC handlers do), ``tools_in_prompt``.
    * ``reward_mode``: ``binary`` | ``dense``. ``max_turns``: agent steps per episode (default 1
      for single-turn-only categories, else 40). ``max_steps_per_turn``: BFCL's limit, 20.
    * ``data_dir``: BFCL data folder (default: the installed ``bfcl_eval`` package's).
    * ``timeout_s``, ``num_workers``: the env's own worker pool; ``pool``: share one instead
      (``shared_kwargs()`` returns it and the loaded ``tasks``).

    ## Version History
    * v0: initial version (bfcl-eval 2026.3.23 data and checkers).
    """

    def __init__(self, categories: Sequence[str] = ("single_turn",), split: Split = "all",
                 eval_fraction: float = 0.0, split_seed: int = 0, max_turns: int | None = None,
                 reward_mode: Literal["binary", "dense"] = "binary", format: Format = "hermes",
                 sanitize_names: bool | None = None, tools_in_prompt: bool = True,
                 max_steps_per_turn: int = MAX_STEPS_PER_TURN, data_dir: str | Path | None = None,
                 timeout_s: float = 30.0, num_workers: int = 1, pool: BFCLWorkerPool | None = None,
                 tasks: Sequence[BFCLTask] | None = None, render_mode: str | None = None) -> None:
        super().__init__()
        if format not in ("hermes", "pythonic"):
            raise ValueError(f"format must be 'hermes' or 'pythonic', got {format!r}")
        if reward_mode not in ("binary", "dense"):
            raise ValueError(f"reward_mode must be 'binary' or 'dense', got {reward_mode!r}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.fmt, self.reward_mode, self.tools_in_prompt = format, reward_mode, tools_in_prompt
        self.sanitize_names = format == "hermes" if sanitize_names is None else sanitize_names
        if tasks is None:
            tasks = load_tasks(categories, split=split, eval_fraction=eval_fraction,
                               split_seed=split_seed, data_dir=data_dir)
        self.tasks = tasks if isinstance(tasks, TaskList) else TaskList(tasks)
        self._index = {t.task_id: i for i, t in enumerate(self.tasks)}
        any_multi = any(c in MULTI_TURN for c in expand_categories(categories))
        self.max_turns = max_turns if max_turns is not None else (40 if any_multi else 1)
        self.max_steps_per_turn = max_steps_per_turn
        self._owns_pool = pool is None
        self.pool = BFCLWorkerPool(num_workers, timeout_s) if pool is None else pool
        self._task: BFCLTask | None = None
        self._session: Session | None = None
        self._done = True
        self._transcript: list[str] = []
        self._shown: dict[str, str] = {}

    # ------------------------------------------------------------------------------- reset

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._end_session()
        i = pick_task_index(options, len(self.tasks), self.np_random, self._index.get)
        task = self._task = self.tasks[i]
        every_doc = list(task.functions) + [d for ds in task.missed_function.values() for d in ds]
        self._name_maps([d["name"] for d in every_doc])
        self._available = add_language_hint(task.functions, task.category)
        self._turn, self._turn_steps, self._steps = 0, 0, 0
        self._calls: list[list[list[Call]]] = [[] for _ in task.turns]
        self._session = self.pool.open_session(task.worker_entry()) if task.multi_turn else None
        self._done, self._last_reward = False, 0.0
        obs = self._turn_text(0)
        self._transcript = [f"user: {obs}"]
        info: ResetInfo = {"task_id": task.task_id, "task": obs, "family": task.category,
                           "system_prompt": self._system_prompt()}
        return obs, {**info, "tools": self._tools()}

    def _name_maps(self, names: list[str]) -> None:
        """BFCL name <-> the name shown to the model (sanitized unless that would collide)."""
        shown = {n: sanitize_name(n) if self.sanitize_names else n for n in names}
        clashes = {s for s, k in Counter(shown.values()).items() if k > 1}
        self._shown = {n: n if s in clashes else s for n, s in shown.items()}
        self._from_model = {**{n: n for n in names}, **{s: n for n, s in self._shown.items()}}

    def shown_name(self, name: str) -> str:
        """The name the model sees for BFCL function ``name`` in the current episode."""
        return self._shown.get(name, name)

    def _system_prompt(self) -> str:
        task = self._task
        output = PYTHONIC_OUTPUT if self.fmt == "pythonic" else HERMES_OUTPUT
        parts = [PERSONA + TASK, CALL_FORMAT.format(output_format=output, param_types=""), MULTITURN]
        if self.tools_in_prompt:
            docs = self._available if self.fmt == "pythonic" else self._tools()
            parts.append(AVAILABLE.format(functions=json.dumps(docs, indent=4)))
        prompt = "\n\n".join(parts)
        extra = [m["content"] for m in task.turns[0] if m["role"] == "system"] if task.turns else []
        return "\n\n".join([prompt, *extra])  # BFCL appends an entry's own system message

    def _tools(self, docs: Sequence[dict] | None = None) -> list[dict]:
        docs = self._available if docs is None else docs
        return [to_openai_tool(d, self._shown[d["name"]]) for d in docs]

    def _turn_text(self, turn: int) -> str:
        """The user text of ``turn``: its messages (a multi-message history as a transcript) and,
        in miss_func, the docs of the functions it adds."""
        task = self._task
        messages = [m for m in task.turns[turn] if m["role"] != "system"]
        if len(messages) == 1:
            text = messages[0]["content"]
        else:
            text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
        added = task.missed_function.get(turn, ())
        if added:
            self._available += list(added)
            shown = list(added) if self.fmt == "pythonic" else self._tools(added)
            docs = str(shown) if self.fmt == "pythonic" else json.dumps(shown)
            text = "\n\n".join(filter(None, [ADDED_FUNCTIONS.format(functions=docs), text]))
        return text

    # ------------------------------------------------------------------------------- step

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done or self._task is None:
            raise ResetNeeded("BFCLEnv episode has ended; call reset() before step()")
        self._steps += 1
        self._transcript.append(f"assistant: {action}")
        parsed = parse_tool_calls(action, self.fmt)
        calls = [(self._from_model.get(c.name, c.name), c.arguments) for c in parsed.calls]
        info: dict[str, Any] = {**StepInfo(won=False, invalid=bool(parsed.errors))}
        if parsed.errors:
            info["parse_errors"] = parsed.errors
        if not self._task.multi_turn:
            return self._step_single(parsed, calls, info)
        if not calls:  # BFCL: an answer without (decodable) calls ends the user turn
            return self._next_turn(info)
        return self._step_calls(parsed, calls, info)

    def _step_single(self, parsed: ParseResult, calls: list[Call], info: dict[str, Any]):
        task = self._task
        if task.category in NO_CALL_EXPECTED:
            won = not calls and not parsed.errors
        elif task.category in ANY_CALL_EXPECTED:
            won = bool(calls) and not parsed.errors
        elif calls and not parsed.errors:
            verdict = self.pool.score_ast(task.category, task.language, task.functions, calls,
                                          task.ground_truth)
            won = verdict.get("valid") is True
            self._record_verdict(verdict, info)
        else:
            won = False
        if self.reward_mode == "dense":
            relevance = task.category in NO_CALL_EXPECTED + ANY_CALL_EXPECTED
            reward = toolrl_reward(calls, None if relevance else task.ground_truth,
                                   format_ok=not parsed.errors,
                                   expect_call=task.category in ANY_CALL_EXPECTED)
        else:
            reward = 1.0 if won else 0.0
        info["won"] = won
        return self._end("", reward, True, False, info)

    def _step_calls(self, parsed: ParseResult, calls: list[Call], info: dict[str, Any]):
        response = self.pool.execute(self._session, calls)
        self._calls[self._turn].append(calls)
        self._turn_steps += 1
        results = response.get("results")
        if results is None:
            info["error"] = response.get("error", "BFCL worker failed")
            results = [f"Error during execution: {info['error']}"] * len(calls)
        obs = self._format_results(calls, results, parsed.errors)
        if self._turn_steps > self.max_steps_per_turn:
            info["force_quit"] = True
            return self._finish(obs, info, passed=False)
        return self._continue(obs, info)

    def _next_turn(self, info: dict[str, Any]):
        self._turn += 1
        self._turn_steps = 0
        if self._turn == len(self._task.turns):
            return self._finish("", info, passed=None)
        obs = self._turn_text(self._turn)
        if self._task.missed_function.get(self._turn):
            info["tools"] = self._tools()
        return self._continue(obs, info)

    def _continue(self, obs: str, info: dict[str, Any]):
        if self._steps >= self.max_turns:
            return self._finish(obs, info, passed=False, truncated=True)
        info["turn"] = self._turn
        return self._end(obs, 0.0, False, False, info)

    def _finish(self, obs: str, info: dict[str, Any], passed: bool | None, truncated: bool = False):
        """Score a multi-turn episode. ``passed=False``: failed without checking (force quit,
        truncation); the dense reward still counts the leading turns that pass."""
        task, dense = self._task, self.reward_mode == "dense"
        self._end_session()
        won, reward = False, 0.0
        if passed is None or dense:
            verdict = self.pool.score_multi_turn(task.worker_entry(), task.ground_truth,
                                                 self._calls, dense=dense)
            self._record_verdict(verdict, info)
            won = passed is None and verdict.get("valid") is True
            if dense:
                reward = min(verdict.get("turns_passed", 0), self._turn) / len(task.ground_truth)
                reward = 1.0 if won else reward
            else:
                reward = 1.0 if won else 0.0
        info["won"] = won
        return self._end(obs, reward, not truncated, truncated, info)

    def _end(self, obs: str, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]):
        self._done = terminated or truncated
        self._last_reward = float(reward)
        if obs:
            self._transcript.append(f"user: {obs}")
        return obs, float(reward), terminated, truncated, info

    @staticmethod
    def _record_verdict(verdict: dict, info: dict[str, Any]) -> None:
        if "valid" not in verdict:  # the worker failed: recorded, not raised
            info["error"] = verdict.get("error", "BFCL worker failed")
            info["timeout"] = bool(verdict.get("timeout"))
        elif not verdict["valid"]:
            info["error_type"] = verdict.get("error_type", "")
            info["checker_error"] = verdict.get("error", "")

    def _format_results(self, calls: list[Call], results: list[str], errors: list[str]) -> str:
        if self.fmt == "pythonic":  # BFCL's format_execution_results_prompting
            names = [f"{n}({', '.join(f'{k}={v!r}' for k, v in a.items())})" for n, a in calls]
            messages = [{"role": "tool", "name": n, "content": r} for n, r in zip(names, results)]
            messages += [{"role": "tool", "name": "parser", "content": e} for e in errors]
            return repr(messages)
        blocks = list(results) + [f"Error: {e}" for e in errors]
        return "\n".join(f"<tool_response>\n{b}\n</tool_response>" for b in blocks)

    def _end_session(self) -> None:
        if self._session is not None:
            if self._session.history:
                self.pool.end_session(self._session)
            self._session = None

    # ------------------------------------------------------------------------------- expert

    def expert_action(self) -> str | None:
        """The ground-truth answer for the current state (None where BFCL has none)."""
        task = self._task
        if task is None or self._done:
            return None
        if not task.multi_turn:
            if task.category in NO_CALL_EXPECTED:
                return NO_CALL_ANSWER
            if task.category in ANY_CALL_EXPECTED:
                return None
            return self._render(single_turn_answer_calls(task))
        gt_turn = multi_turn_answer_calls(task)[self._turn]
        if gt_turn and not self._calls[self._turn]:
            return self._render(gt_turn)
        return END_OF_TURN

    def _render(self, calls: Sequence[ToolCall]) -> str | None:
        """None when the format cannot write them (pythonic and an argument named ``from``)."""
        try:
            return render_tool_calls([ToolCall(self._shown.get(c.name, c.name), c.arguments)
                                      for c in calls], self.fmt)
        except ValueError:
            return None

    # ------------------------------------------------------------------------------- misc

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._task is None:
            return None
        return "\n".join(self._transcript + [f"reward: {self._last_reward}"])

    def shared_kwargs(self) -> dict[str, Any]:
        return {"pool": self.pool, "tasks": self.tasks}

    def close(self) -> None:
        self._end_session()
        if self._owns_pool:
            self.pool.close()
        super().close()
