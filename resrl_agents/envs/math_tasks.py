"""Math task sources: built-in arithmetic and worked chains, GSM8K and any ``{"question","answer"}`` jsonl.

Every source has the same small interface: ``len(src)``, ``src.get(i) -> MathTask`` and
``src.index_of(task_id) -> int``. Sources are pure data: no verifier, no randomness after
construction, so two envs built with the same arguments see the same tasks in the same order.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Literal, Protocol

Split = Literal["train", "test"]
TEST_FRACTION = 5  # one problem in TEST_FRACTION goes to the test split (by hash)
_MAX_MISSES = 2000  # consecutive duplicate/other-split draws before a small problem space counts as used up


@dataclass(frozen=True)
class MathTask:
    task_id: str  # stable id: derived from the content (arithmetic) or the line (jsonl)
    question: str  # the text shown to the policy
    answer: str  # gold answer as a plain string, e.g. "82" or "0.5"
    family: str  # operation / template / dataset name, for per-family metrics
    solution: str = ""  # worked steps before the final answer (the expert's text); "" when the source has none


class TaskSource(Protocol):
    def __len__(self) -> int: ...
    def get(self, i: int) -> MathTask: ...
    def index_of(self, task_id: str) -> int: ...


class _ListTasks:
    """A fixed list of tasks with an id index; the base of every source here."""

    def __init__(self, tasks: list[MathTask]) -> None:
        if not tasks:
            raise ValueError("a task source must hold at least one task")
        self._tasks = tasks
        self._index = {t.task_id: i for i, t in enumerate(tasks)}

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, i: int) -> MathTask:
        return self._tasks[i]

    def index_of(self, task_id: str) -> int:
        try:
            return self._index[task_id]
        except KeyError:
            raise KeyError(f"unknown task_id {task_id!r}") from None


# ---------------------------------------------------------------------------------------------
# Arithmetic generator
# A sampler draws one problem: (question, answer, family, split_key). The split key canonicalises
# commutative problems ("3 + 5" and "5 + 3" share a key) so train and test never share a problem
# up to operand order.

Problem = tuple[str, int, str, str]

_NAMES = ("Sam", "Mia", "Lee", "Ana", "Omar", "Kim", "Ravi", "Zoe")


def _binary(rng: random.Random, op: str, lo: int, hi: int) -> Problem:
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    if op == "-" and b > a:  # keep differences non-negative
        a, b = b, a
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    family = {"+": "add", "-": "sub", "*": "mul"}[op]
    key = f"{min(a, b)}{op}{max(a, b)}" if op in "+*" else f"{a}{op}{b}"
    return f"What is {a} {op} {b}?", value, family, key


def _three_operands(rng: random.Random) -> Problem:
    a, b, c = (rng.randint(2, 30) for _ in range(3))
    op1, op2 = rng.choice("+-*"), rng.choice("+-*")
    apply = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}
    if rng.random() < 0.3:  # parenthesised: (a op1 b) op2 c
        text, value = f"({a} {op1} {b}) {op2} {c}", apply[op2](apply[op1](a, b), c)
    elif op2 == "*" and op1 != "*":  # precedence: a op1 (b * c)
        text, value = f"{a} {op1} {b} * {c}", apply[op1](a, b * c)
    else:  # left to right
        text, value = f"{a} {op1} {b} {op2} {c}", apply[op2](apply[op1](a, b), c)
    return f"What is {text}?", value, "expr3", text


def _word_problem(rng: random.Random) -> Problem:
    name = rng.choice(_NAMES)
    a, b, c = rng.randint(2, 60), rng.randint(2, 12), rng.randint(2, 40)
    kind = rng.choice(("buy", "give", "boxes", "share", "reading", "change"))
    if kind == "buy":
        q, v = f"{name} has {a} apples and buys {c} more. How many apples does {name} have now?", a + c
    elif kind == "give":
        a, c = max(a, c) + 1, min(a, c)
        q = f"{name} had {a} stickers and gave {c} to a friend. How many stickers are left?"
        v = a - c
    elif kind == "boxes":
        q, v = f"A box holds {b} pencils. How many pencils are in {c} boxes?", b * c
    elif kind == "share":
        q = f"{a * b} cookies are shared equally among {b} children. How many cookies does each child get?"
        v = a
    elif kind == "reading":
        q = (f"{name} reads {b} pages a day for {c} days, then {a} more pages. "
             f"How many pages did {name} read in total?")
        v = b * c + a
    else:  # change: pays with the smallest round bill that covers the price
        price = b * c
        bill = (price // 10 + 1) * 10 + 10 * (a % 3)
        q = (f"Pens cost ${b} each. {name} buys {c} pens and pays with ${bill}. "
             f"How much change does {name} get, in dollars?")
        v = bill - price
    return q, v, f"word_{kind}", q


def _sampler(difficulty: int) -> Callable[[random.Random], Problem]:
    if difficulty == 0:
        return lambda rng: _binary(rng, "+", 0, 9)
    if difficulty == 1:
        return lambda rng: _binary(rng, "+", 10, 99)
    if difficulty == 2:
        return lambda rng: _binary(rng, rng.choice("+-*"), 10, 99)
    if difficulty == 3:
        return _three_operands
    if difficulty == 4:
        return _word_problem
    raise ValueError(f"difficulty must be 0..4, got {difficulty}")


def _in_test_split(key: str) -> bool:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % TEST_FRACTION == 0


@lru_cache(maxsize=16)
def _generate(kind: str, difficulty: int, size: int, seed: int, split: Split) -> tuple[MathTask, ...]:
    """Distinct problems of one split, in draw order. Memoised: G env copies share one list.

    ``kind`` is ``arithmetic`` or ``chain``; a chain task also carries its worked steps."""
    draw = _sampler(difficulty) if kind == "arithmetic" else _chain_sampler(difficulty)
    rng = random.Random(f"{kind}-{difficulty}-{seed}")
    prefix = "arith" if kind == "arithmetic" else kind
    want_test, seen, tasks, misses = split == "test", set(), [], 0
    while len(tasks) < size and misses < _MAX_MISSES:
        question, value, family, key = draw(rng)
        if key in seen or _in_test_split(key) != want_test:
            misses += 1
            continue
        misses = 0
        seen.add(key)
        digest = hashlib.sha256(question.encode()).hexdigest()[:12]
        solution = worked_steps(key) if kind == "chain" else ""
        tasks.append(MathTask(f"{prefix}-d{difficulty}-{digest}", question, str(value), family, solution))
    return tuple(tasks)


class ArithmeticTasks(_ListTasks):
    """Built-in deterministic arithmetic and word problems (no data files needed).

    ``difficulty``: 0 = 1-digit a+b; 1 = 2-digit addition ("What is 37 + 45?", the warm-start
    task); 2 = 2-digit add/sub/mul; 3 = three-operand expressions; 4 = word problems from templates
    with 2-3 numbers. ``size`` is an upper bound: small problem spaces hold fewer distinct problems
    (difficulty 0 has 55 up to operand order). train and test are disjoint by a hash of the
    problem (operand order ignored for + and *), about 1/5 of the problems in test.
    """

    def __init__(self, difficulty: int = 1, size: int = 10000, seed: int = 0, split: Split = "train") -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        super().__init__(list(_generate("arithmetic", difficulty, size, seed, split)))


# ---------------------------------------------------------------------------------------------
# Worked chains: "What is 23 + 48 - 17?" answered "23+48=71\n71-17=54\n#### 54". Every step is
# written out, so a wrong answer leaves the right one at the first wrong digit, mid-response
# (what ResRL's token weights can act on), 20-60 tokens with the tiny model's tokenizer.

# difficulty -> (start range, operand range, steps, cap on the running total)
_CHAINS = {1: ((2, 19), (2, 9), 3, 99), 2: ((10, 99), (10, 99), 2, 999), 3: ((10, 99), (10, 99), 3, 999)}


def _chain_sampler(difficulty: int) -> Callable[[random.Random], Problem]:
    if difficulty not in _CHAINS:
        raise ValueError(f"chain difficulty must be one of {sorted(_CHAINS)}, got {difficulty}")
    (s_lo, s_hi), (lo, hi), steps, cap = _CHAINS[difficulty]

    def draw(rng: random.Random) -> Problem:
        total = rng.randint(s_lo, s_hi)
        text = str(total)
        for _ in range(steps):
            b, op = rng.randint(lo, hi), rng.choice("+-")
            if (op == "-" and b > total) or (op == "+" and total + b > cap):  # stay in [0, cap]
                op = "+" if op == "-" else "-"
            total += b if op == "+" else -b
            text += f" {op} {b}"
        return f"What is {text}?", total, "chain", text

    return draw


def worked_steps(expr: str) -> str:
    """One line per operation, left to right: ``"23 + 48 - 17"`` -> ``"23+48=71\n71-17=54"``."""
    parts = expr.split()
    total, lines = int(parts[0]), []
    for op, num in zip(parts[1::2], parts[2::2]):
        new = total + int(num) if op == "+" else total - int(num)
        lines.append(f"{total}{op}{num}={new}")
        total = new
    return "\n".join(lines)


class ChainTasks(_ListTasks):
    """Left-to-right + / - chains whose expert answer shows every step (``MathTask.solution``).

    ``difficulty``: 1 = a start of 2-19 and three steps of ±2..9, the total kept in 0..99
    ("What is 7 + 5 - 3 + 8?", ~30 answer tokens); 2 = two steps of 2-digit operands; 3 = three.
    Running totals never go negative. train and test are disjoint by a hash of the expression.
    """

    def __init__(self, difficulty: int = 1, size: int = 10000, seed: int = 0, split: Split = "train") -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        super().__init__(list(_generate("chain", difficulty, size, seed, split)))


# ---------------------------------------------------------------------------------------------
# jsonl sources

_GSM8K_FINAL = "####"
_NUMBER_WITH_COMMAS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")


def gold_from_solution(answer: str) -> str:
    """The gold of a GSM8K-style answer: the text after the last ``####``, thousands commas removed."""
    gold = answer.rsplit(_GSM8K_FINAL, 1)[-1].strip()
    return gold.replace(",", "") if _NUMBER_WITH_COMMAS.match(gold) else gold


class JsonlTasks(_ListTasks):
    """Tasks from a jsonl file of ``{"question", "answer"}``; ``answer`` may be a GSM8K solution.

    Task ids are ``<prefix>-<line index>``; at most ``size`` tasks are read.
    """

    def __init__(self, path: str | Path, *, family: str | None = None, size: int | None = None) -> None:
        path = Path(path)
        family = family or path.stem
        tasks = []
        with path.open(encoding="utf-8") as f:
            for line in f:
                if size is not None and len(tasks) >= size:
                    break
                if not line.strip():
                    continue
                row = json.loads(line)
                task_id = f"{family}-{path.stem}-{len(tasks):05d}"
                tasks.append(MathTask(task_id, row["question"], gold_from_solution(str(row["answer"])), family))
        super().__init__(tasks)


class GSM8KTasks(JsonlTasks):
    """GSM8K (``train.jsonl`` / ``test.jsonl`` of openai/grade-school-math); family ``gsm8k``."""

    def __init__(self, path: str | Path, size: int | None = None) -> None:
        super().__init__(path, family="gsm8k", size=size)


def make_tasks(source: str = "arithmetic", *, split: Split = "train", difficulty: int = 1,
               size: int = 10000, seed: int = 0, data_path: str | Path | None = None) -> TaskSource:
    """Build a task source.

    ``source``: ``"arithmetic"`` or ``"chain"`` (built in; use difficulty, size, seed, split), ``"gsm8k"``
    (needs ``data_path``: a folder holding ``<split>.jsonl`` or a jsonl file), or a path to a
    jsonl file of ``{"question", "answer"}``.
    """
    if source == "arithmetic":
        return ArithmeticTasks(difficulty=difficulty, size=size, seed=seed, split=split)
    if source == "chain":
        return ChainTasks(difficulty=difficulty, size=size, seed=seed, split=split)
    if source == "gsm8k":
        if data_path is None:
            raise ValueError("source='gsm8k' needs data_path: a folder with train.jsonl/test.jsonl "
                             "(openai/grade-school-math) or one .jsonl file")
        path = Path(data_path)
        path = path / f"{split}.jsonl" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"GSM8K file not found: {path}")
        return GSM8KTasks(path, size=size)
    path = Path(source)
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise FileNotFoundError(f"task file not found: {path}")
        return JsonlTasks(path, size=size)
    raise ValueError(f"unknown task source {source!r}: use 'arithmetic', 'chain', 'gsm8k' or a .jsonl path")
