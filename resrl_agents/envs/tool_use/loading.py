"""Where a ToolUse env's tools and tasks come from: user specs resolved to :class:`Tool` objects
and a tasks jsonl read into :class:`ToolTask` records. Mistakes fail at construction, with the
spec or line that caused them, never mid-rollout.

Tool specs (a list; entries may be mixed):

* ``"my_pkg.my_tools"``: every ``@tool`` function the module defines (or lists in ``__all__``);
* ``"my_pkg.my_tools:lookup"``: one function (a ``@tool``, or a typed function wrapped here);
* ``"path/to/tools.py"``: a Python file, collected like a module;
* ``{"schema": "tools.json", "impl": "my_pkg.impls"}``: schemas from a JSON/YAML file (OpenAI
  function format, see ``tools/schema.py::load_tools``), each executed by the function of the same
  name in ``impl`` (a module or a ``.py`` file).

Tasks file: one JSON object per line, ``{"id", "question", "answer", "family"?, "calls"?}``.
``calls`` is the expert's plan: a list of steps, each a list of ``{"name", "arguments"}`` calls
made in one message (a single call object is accepted as a one-call step), after which the expert
answers. Every other key is kept in ``record`` and reaches tools that inject ``task``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Literal

from resrl_agents.tools import Tool, ToolCall, load_tools, tool

ToolSpec = str | Mapping[str, str]
Split = Literal["train", "test", "all"]
SCHEMA_SUFFIXES = (".json", ".yaml", ".yml")


# --------------------------------------------------------------------------- tools


def load_tool_specs(specs: Sequence[ToolSpec] | ToolSpec) -> list[Tool]:
    """The tools named by ``specs`` (see the module docstring), in order; names must be unique."""
    if isinstance(specs, (str, Mapping)):
        specs = [specs]
    tools = []
    for spec in specs:
        try:
            tools += _resolve(spec)
        except ImportError as e:  # name the setting, not just the module
            raise ValueError(f"tools={list(specs)!r}: {spec!r} does not import ({e}); a tool spec is an "
                             "importable module, module:function, a .py file or {schema, impl}") from e
    if not tools:
        raise ValueError("no tools: give at least one tool spec (a module, module:function, "
                         ".py file or {schema, impl})")
    seen: dict[str, Tool] = {}
    for t in tools:
        if t.name in seen and seen[t.name] is not t:
            raise ValueError(f"two different tools are named {t.name!r}; tool names must be unique")
        seen[t.name] = t
    return list(seen.values())


def _resolve(spec: ToolSpec) -> list[Tool]:
    if isinstance(spec, Mapping):
        keys = set(spec)
        if keys != {"schema", "impl"}:
            raise ValueError(f"tool spec {dict(spec)!r}: a schema entry has exactly the keys "
                             "'schema' (a JSON/YAML file) and 'impl' (the module implementing it)")
        return _schema_tools(str(spec["schema"]), str(spec["impl"]))
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(f"tool spec must be a non-empty string or a {{schema, impl}} mapping, "
                        f"got {spec!r}")
    if spec.endswith(SCHEMA_SUFFIXES):
        raise ValueError(f"tool spec {spec!r} is a schema file without implementations; write it as "
                         f"{{schema: {spec}, impl: <module or .py file>}}")
    if spec.endswith(".py"):
        return module_tools(import_file(spec))
    if ":" in spec:
        module, _, attr = spec.partition(":")
        obj = _attr(importlib.import_module(module), attr, spec)
        return [obj if isinstance(obj, Tool) else tool(obj)]
    return module_tools(importlib.import_module(spec))


def _attr(module: ModuleType, qualname: str, spec: str) -> Any:
    obj: Any = module
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"tool spec {spec!r}: {module.__name__} has no attribute {qualname!r}")
        obj = getattr(obj, part)
    return obj


def module_tools(module: ModuleType) -> list[Tool]:
    """The ``@tool`` functions of ``module``: those in ``__all__`` when it has one, else every
    Tool whose function the module itself defines (imported tools are not collected twice)."""
    if hasattr(module, "__all__"):
        found = [getattr(module, n) for n in module.__all__ if isinstance(getattr(module, n, None), Tool)]
    else:
        found = [v for v in vars(module).values()
                 if isinstance(v, Tool) and getattr(v.fn, "__module__", None) == module.__name__]
    if not found:
        raise ValueError(f"module {module.__name__} ({getattr(module, '__file__', '?')}) defines no "
                         "@tool functions")
    return found


def import_file(path: str | Path) -> ModuleType:
    """Import a ``.py`` file as a module (once per resolved path; registered in ``sys.modules``)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"tool file {path} does not exist")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"_resrl_tools_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import_any(impl: str) -> ModuleType:
    return import_file(impl) if impl.endswith(".py") else importlib.import_module(impl)


def _schema_tools(schema: str, impl: str) -> list[Tool]:
    """Schemas from ``schema``, each bound to ``impl``'s function of the same name."""
    module = _import_any(impl)
    fns: dict[str, Callable[..., Any]] = {}
    for t in load_tools(schema):
        fn = getattr(module, t.name, None)
        if isinstance(fn, Tool):
            fn = fn.fn
        if not callable(fn):
            raise ValueError(f"{schema}: tool {t.name!r} has no implementation in {impl} "
                             f"(expected a function named {t.name!r})")
        fns[t.name] = fn
    return load_tools(schema, fns)


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class ToolTask:
    """One question. ``calls`` is the expert plan (None: no expert for this task); ``record`` is
    the whole jsonl row, given to tools that inject ``task``."""

    task_id: str
    question: str
    answer: str
    family: str = "tools"
    calls: tuple[tuple[ToolCall, ...], ...] | None = None
    record: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def load_tasks(source: str | Path | Sequence[Mapping[str, Any]]) -> list[ToolTask]:
    """Tasks from a jsonl path or from a list of row dicts; ids must be unique."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"tasks file {path} does not exist")
        where = str(path)
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{where}:{n}: invalid JSON: {e.msg}") from None
    else:
        where, rows = "tasks", list(enumerate(source, 1))
    tasks = [_task(row, f"{where}:{n}", n) for n, row in rows]
    if not tasks:
        raise ValueError(f"{where}: no tasks")
    dup = [i for i, k in Counter(t.task_id for t in tasks).items() if k > 1]
    if dup:
        raise ValueError(f"{where}: duplicate task ids {dup[:5]}")
    return tasks


def _task(row: Any, where: str, n: int) -> ToolTask:
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: a task must be a JSON object, got {type(row).__name__}")
    question, answer = row.get("question"), row.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: 'question' must be a non-empty string")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not str(answer).strip():
        raise ValueError(f"{where}: 'answer' must be a non-empty string or a number")
    calls = None if row.get("calls") is None else _plan(row["calls"], where)
    return ToolTask(str(row.get("id", f"task-{n}")), question, str(answer).strip(),
                    str(row.get("family", "tools")), calls, dict(row))


def _plan(steps: Any, where: str) -> tuple[tuple[ToolCall, ...], ...]:
    if not isinstance(steps, list):
        raise ValueError(f"{where}: 'calls' must be a list of steps (lists of tool calls)")
    plan = []
    for s, step in enumerate(steps, 1):
        step = [step] if isinstance(step, Mapping) else step
        if not isinstance(step, list) or not step:
            raise ValueError(f"{where}: calls step {s} must be a non-empty list of tool calls")
        for c in step:
            if not (isinstance(c, Mapping) and isinstance(c.get("name"), str)
                    and isinstance(c.get("arguments", {}), Mapping)):
                raise ValueError(f"{where}: calls step {s}: each call is {{'name': str, "
                                 f"'arguments': object}}, got {c!r}")
        plan.append(tuple(ToolCall(c["name"], dict(c.get("arguments", {}))) for c in step))
    return tuple(plan)


def select_split(tasks: Sequence[ToolTask], split: Split, eval_fraction: float,
                 split_seed: int) -> list[ToolTask]:
    """A deterministic per-id split: a task is held out for ``test`` when the hash of its id (with
    ``split_seed``) falls below ``eval_fraction``, so adding tasks never moves the others."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if not 0.0 <= eval_fraction <= 1.0:
        raise ValueError(f"eval_fraction must lie in [0, 1], got {eval_fraction}")
    if split == "all":
        return list(tasks)

    def held_out(t: ToolTask) -> bool:
        h = hashlib.sha256(f"{split_seed}:{t.task_id}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64 < eval_fraction

    out = [t for t in tasks if held_out(t) == (split == "test")]
    if not out:
        raise ValueError(f"split {split!r} is empty ({len(tasks)} tasks, eval_fraction="
                         f"{eval_fraction}); use split=all or change eval_fraction")
    return out
