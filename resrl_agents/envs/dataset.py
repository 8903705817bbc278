"""Single-turn env over a dataset of prompts, scored by Python reward functions (TRL's convention).

Bring what a TRL ``GRPOTrainer`` user has: a table of prompts (jsonl, parquet or a ``datasets``
folder saved with ``save_to_disk``) and reward functions ``f(completions, **kwargs) -> list[float]``.
Each function is called with ``prompts``, ``completions`` and every other column of the row as
keyword lists of length one (one episode = one completion), as TRL calls them per batch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from gymnasium.error import ResetNeeded

from resrl_agents.envs.base import ResetInfo, StepInfo, TextEnv, pick_task_index
from resrl_agents.envs.tool_use.loading import Split, import_file, select_split

RewardFunc = Callable[..., Sequence[float | None]]

# Action scripts for ``check_env``: any text ends the episode.
SCRIPTED_ACTIONS: tuple[tuple[str, ...], ...] = (("The answer is 4.",), ("",))
_CHECK_ROWS = ({"prompt": "What is 2 + 2?", "answer": "4"},
               {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
                "answer": "red"})


def check_kwargs(shared_data: Path) -> dict[str, Any]:
    """Make kwargs for the registry checker: two bundled rows and the example reward function."""
    return {"path": list(_CHECK_ROWS), "reward_funcs": ["resrl_agents.envs.dataset:contains_answer"],
            "split": "all"}


def contains_answer(completions: list, answer: list[str], **kwargs: Any) -> list[float]:
    """1.0 when the row's ``answer`` occurs in the completion (text or the assistant message)."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [float(a.strip().lower() in t.lower()) for t, a in zip(texts, answer)]


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PromptRow:
    task_id: str  # the id column, else a hash of the prompt (stable when rows are added or moved)
    prompt: str | tuple[dict, ...]  # text, or chat messages as in the file
    columns: dict[str, Any]  # every other column, passed to the reward functions by name
    family: str


def read_rows(path: str | Path | Sequence[dict]) -> list[dict]:
    """Rows of a ``.jsonl`` / ``.json`` file, a ``.parquet`` file (needs pyarrow) or a folder written
    by ``datasets.Dataset.save_to_disk`` (needs datasets); a list of dicts is taken as it is."""
    if not isinstance(path, (str, Path)):
        return [dict(r) for r in path]
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"env.kwargs.path: {p} does not exist")
    if p.is_dir():
        return _read_saved_dataset(p)
    if p.suffix == ".parquet":
        if importlib.util.find_spec("pyarrow") is None:
            raise ImportError(f"reading {p.name} needs pyarrow: pip install pyarrow (or save the data as jsonl)")
        import pyarrow.parquet as pq

        return pq.read_table(p).to_pylist()
    if p.suffix == ".json":
        rows = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(rows, list):
            raise ValueError(f"{p}: a .json dataset must be a list of objects (or use .jsonl)")
        return rows
    if p.suffix != ".jsonl":
        raise ValueError(f"env.kwargs.path: {p.name} is not .jsonl, .json, .parquet or a datasets folder")
    with p.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_saved_dataset(p: Path) -> list[dict]:
    if importlib.util.find_spec("datasets") is None:
        raise ImportError(f"{p} is a folder: reading a saved HF dataset needs `pip install datasets` (or use jsonl)")
    import datasets

    ds = datasets.load_from_disk(str(p))
    if isinstance(ds, datasets.DatasetDict):
        raise ValueError(f"{p} holds the splits {sorted(ds)}: point env.kwargs.path at one of them ({p}/train)")
    return ds.to_list()


def _prompt(value: Any, where: str) -> str | tuple[dict, ...]:
    if isinstance(value, str) and value:
        return value
    if (isinstance(value, list) and value and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value)
            and value[-1]["role"] == "user"):
        return tuple({"role": m["role"], "content": m["content"]} for m in value)
    raise ValueError(f"{where}: the prompt must be a non-empty string or a list of chat messages "
                     f"({{'role', 'content'}}) ending with a user message, got {str(value)[:120]!r}")


def make_rows(raw: Sequence[dict], prompt_column: str, id_column: str | None, family_column: str | None) -> list[PromptRow]:
    rows = []
    for i, r in enumerate(raw):
        where = f"row {i}"
        if not isinstance(r, dict) or prompt_column not in r:
            raise ValueError(f"{where} has no column {prompt_column!r} (env.kwargs.prompt_column); "
                             f"its columns: {sorted(r) if isinstance(r, dict) else type(r).__name__}")
        prompt = _prompt(r[prompt_column], where)
        task_id = str(r[id_column]) if id_column else hashlib.sha1(json.dumps(prompt).encode()).hexdigest()[:12]
        columns = {k: v for k, v in r.items() if k != prompt_column}
        rows.append(PromptRow(task_id, prompt, columns, str(r.get(family_column, "")) if family_column else ""))
    if not rows:
        raise ValueError("the dataset has no rows")
    return rows


# --------------------------------------------------------------------------- rewards


def load_reward_func(spec: str) -> tuple[str, RewardFunc]:
    """``"my_pkg.rewards:fn"`` or ``"path/to/rewards.py:fn"`` -> (``fn``, the function)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"env.kwargs.reward_funcs entry {spec!r} must be 'module:function' or 'file.py:function'")
    if module_name.endswith(".py") and not Path(module_name).expanduser().is_file():
        raise FileNotFoundError(f"reward function {spec!r}: no file {module_name} (relative to {Path.cwd()})")
    module = import_file(module_name) if module_name.endswith(".py") else importlib.import_module(module_name)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"reward function {spec!r}: {module_name} has no function {attr!r}")
    params = inspect.signature(fn).parameters
    if "completions" not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise ValueError(f"reward function {spec!r} must take `completions` (and **kwargs), as TRL's reward_funcs do")
    return attr, fn


def score(fn: RewardFunc, name: str, prompt: Any, completion: Any, columns: dict[str, Any]) -> float | None:
    """One completion's reward from ``fn`` (None: the function abstains, as TRL allows)."""
    out = fn(prompts=[prompt], completions=[completion], **{k: [v] for k, v in columns.items()})
    if not isinstance(out, (list, tuple)) or len(out) != 1:
        raise TypeError(f"reward function {name} returned {out!r} for one completion; it must return a list of one float")
    value = out[0]
    if value is None:
        return None
    if not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"reward function {name} returned {value!r}; rewards are finite floats (or None)")
    return float(value)


# --------------------------------------------------------------------------- env


class DatasetEnv(TextEnv):
    """
    ## Description
    One prompt of a dataset per episode; the agent answers once and weighted Python reward
    functions score the answer. Works with the data and reward functions of TRL's GRPOTrainer.

    ## Action Space
    Any ``str``: the model's full answer.

    ## Observation Space
    Any ``str``. ``reset`` returns the prompt text (for a chat prompt, its last user message); a
    chat prompt is rendered whole from ``info["prompt_messages"]``, a text prompt as one user
    message after ``system_prompt`` (when set). ``step`` returns ``""``.

    ## Rewards
    ``sum_i w_i * f_i(completion)`` over ``reward_funcs`` and ``reward_weights`` (default 1 each);
    a function that returns None for a completion adds nothing. Each function's own value is in
    ``info["reward_components"]`` (logged as ``reward/<function name>``; NaN when it abstained).
    Completions reach the functions as TRL passes them: the text for a text prompt, ``[{"role":
    "assistant", "content": text}]`` for a chat prompt; ``prompts`` and every other column too.

    ## Success
    ``won`` (``rollout/success``) is total reward >= ``success_threshold`` (default 1.0: with one
    0/1 reward function, a reward of 1).

    ## Starting State
    ``reset(seed=s)`` draws the row from the env's RNG seeded with ``s`` (the same row in every copy:
    a GRPO group); ``options={"task_id": id}`` or ``{"index": i}`` picks one.

    ## Episode End
    Terminated after the single step; never truncated. Stepping again raises ``ResetNeeded``.

    ## Arguments
    * ``path``: ``.jsonl`` / ``.json`` / ``.parquet`` file or ``save_to_disk`` folder (or a list of rows).
    * ``reward_funcs``: ``["module:function", "file.py:function", ...]``; ``reward_weights``: one float each.
    * ``prompt_column`` (``"prompt"``), ``id_column`` (task ids; default a hash of the prompt),
      ``family_column`` (per-family success metrics; default none).
    * ``split`` (``train`` | ``test`` | ``all``), ``eval_fraction``, ``split_seed``: a deterministic
      per-id held-out split (as ``env=tools``).
    * ``system_prompt``: system message put before text prompts (chat prompts carry their own).
    * ``success_threshold``: see Success.

    ## Version History
    * v0: initial version.
    """

    max_turns = 1

    def __init__(self, path: str | Path | Sequence[dict], reward_funcs: Sequence[str],
                 reward_weights: Sequence[float] | None = None, prompt_column: str = "prompt",
                 id_column: str | None = None, family_column: str | None = None, split: Split = "train",
                 eval_fraction: float = 0.1, split_seed: int = 0, system_prompt: str | None = None,
                 success_threshold: float = 1.0, render_mode: str | None = None) -> None:
        super().__init__()
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        if isinstance(reward_funcs, str) or not reward_funcs:
            raise ValueError("env.kwargs.reward_funcs must be a non-empty list of 'module:function' strings")
        self.funcs = [load_reward_func(spec) for spec in reward_funcs]
        names = [n for n, _ in self.funcs]
        if len(set(names)) < len(names):
            raise ValueError(f"reward function names must differ (each is logged as reward/<name>): {names}")
        self.weights = [1.0] * len(self.funcs) if reward_weights is None else [float(w) for w in reward_weights]
        if len(self.weights) != len(self.funcs):
            raise ValueError(f"env.kwargs.reward_weights has {len(self.weights)} entries for {len(self.funcs)} reward_funcs")
        self.rows = select_split(make_rows(read_rows(path), prompt_column, id_column, family_column), split,
                                 eval_fraction, split_seed)
        self._index = {r.task_id: i for i, r in enumerate(self.rows)}
        if len(self._index) < len(self.rows):
            raise ValueError(f"id_column {id_column!r} has repeated ids" if id_column else "the dataset has repeated prompts")
        self.system_prompt, self.success_threshold = system_prompt, success_threshold
        self._row: PromptRow | None = None
        self._done, self._last = True, ""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._row = self.rows[pick_task_index(options, len(self.rows), self.np_random, self._index.get)]
        self._done, self._last = False, ""
        prompt = self._row.prompt
        obs = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        info: ResetInfo = {"task_id": self._row.task_id, "task": obs, "family": self._row.family}
        if isinstance(prompt, str):
            if self.system_prompt:
                info["system_prompt"] = self.system_prompt
            return obs, dict(info)
        return obs, {**info, "prompt_messages": [dict(m) for m in prompt]}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done or self._row is None:
            raise ResetNeeded("DatasetEnv episode has ended (single turn); call reset() before step()")
        row, self._done, self._last = self._row, True, action
        completion = action if isinstance(row.prompt, str) else [{"role": "assistant", "content": action}]
        prompt = row.prompt if isinstance(row.prompt, str) else [dict(m) for m in row.prompt]
        values = {name: score(fn, name, prompt, completion, row.columns) for name, fn in self.funcs}
        total = float(sum(w * v for w, v in zip(self.weights, values.values()) if v is not None))
        info: StepInfo = {"won": total >= self.success_threshold, "invalid": False,
                          "reward_components": {k: math.nan if v is None else v for k, v in values.items()}}
        return "", total, True, False, dict(info)

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._row is None:
            return None
        return f"prompt: {self._row.prompt}\nanswer: {self._last}"
