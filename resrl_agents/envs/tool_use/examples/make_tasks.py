"""Generate the bundled warehouse example: ``warehouse.json`` (the tools' data) and
``warehouse_tasks.jsonl`` (questions, gold answers and the expert's tool-call plan).

Everything follows from one seed, so ``python -m resrl_agents.envs.tool_use.examples.make_tasks``
rewrites byte-identical files (a test checks that the shipped files match). Each task row is the
tasks-file format a user writes for their own tools: ``id``, ``question``, ``answer``, ``family``
and, optionally, ``calls``: the tool-call steps an expert makes before answering (one list of
``{"name", "arguments"}`` per assistant message).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable

from resrl_agents.envs.tool_use.examples.warehouse import as_number, evaluate

HERE = Path(__file__).parent
DATA_PATH, TASKS_PATH = HERE / "warehouse.json", HERE / "warehouse_tasks.jsonl"
WAREHOUSES = ["Kelby", "Dunmere", "Ashford", "Varnholm"]
MATERIALS = ["cobalt", "brass", "quartz", "walnut", "basalt", "copper", "onyx", "birch", "slate", "amber"]
PARTS = ["gasket", "valve", "bracket", "spindle", "coupler", "hinge", "flange", "sprocket"]
N_ITEMS = 40
PER_FAMILY = 60

Task = dict[str, Any]
Item = dict[str, Any]


def make_catalog(rng: random.Random) -> dict[str, Any]:
    """40 items with unique two-word names, SKUs, prices (2 decimals) and stock per warehouse."""
    names = rng.sample([f"{m} {p}" for m in MATERIALS for p in PARTS], N_ITEMS)
    skus = rng.sample(range(1000, 10000), N_ITEMS)
    items = [{"sku": f"FL-{s}", "name": n, "price": round(rng.uniform(1.0, 90.0), 2),
              "stock": {w: rng.randint(0, 400) for w in WAREHOUSES}} for n, s in zip(names, skus)]
    return {"warehouses": list(WAREHOUSES), "items": items}


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def _stock_by_sku(rng: random.Random, it: Item) -> Task:
    w = rng.choice(WAREHOUSES)
    return {"question": f"How many units of item {it['sku']} are in stock at the {w} warehouse?",
            "answer": it["stock"][w], "calls": [[_call("get_stock", sku=it["sku"], warehouse=w)]]}


def _stock_by_name(rng: random.Random, it: Item) -> Task:
    w = rng.choice(WAREHOUSES)
    return {"question": f"How many units of the {it['name']} does the {w} warehouse have in stock?",
            "answer": it["stock"][w],
            "calls": [[_call("find_item", query=it["name"])],
                      [_call("get_stock", sku=it["sku"], warehouse=w)]]}


def _total_stock(rng: random.Random, it: Item) -> Task:
    expr = " + ".join(str(it["stock"][w]) for w in WAREHOUSES)
    return {"question": f"How many units of item {it['sku']} are in stock across all warehouses?",
            "answer": as_number(evaluate(expr)),
            "calls": [[_call("list_warehouses")],
                      [_call("get_stock", sku=it["sku"], warehouse=w) for w in WAREHOUSES],
                      [_call("calculator", expression=expr)]]}


def _order_cost(rng: random.Random, it: Item) -> Task:
    n = rng.randint(2, 40)
    expr = f"{n} * {it['price']}"
    return {"question": f"What do {n} units of the {it['name']} cost, in credits?",
            "answer": as_number(evaluate(expr)),
            "calls": [[_call("find_item", query=it["name"])], [_call("get_price", sku=it["sku"])],
                      [_call("calculator", expression=expr)]]}


def _restock(rng: random.Random, it: Item) -> Task:
    w = rng.choice(WAREHOUSES)
    target = it["stock"][w] + rng.randint(10, 300)
    expr = f"{target} - {it['stock'][w]}"
    return {"question": (f"The {w} warehouse must hold {target} units of item {it['sku']}. "
                         "How many more units does it need?"),
            "answer": as_number(evaluate(expr)),
            "calls": [[_call("get_stock", sku=it["sku"], warehouse=w)],
                      [_call("calculator", expression=expr)]]}


def _best_warehouse(rng: random.Random, it: Item) -> Task | None:
    counts = sorted(it["stock"].values())
    if counts[-1] == counts[-2]:
        return None  # a tie has no single answer
    best = max(WAREHOUSES, key=lambda w: it["stock"][w])
    return {"question": f"Which warehouse has the most units of item {it['sku']} in stock?",
            "answer": best,
            "calls": [[_call("list_warehouses")],
                      [_call("get_stock", sku=it["sku"], warehouse=w) for w in WAREHOUSES]]}


FAMILIES: dict[str, Callable[[random.Random, Item], Task | None]] = {
    "stock_by_sku": _stock_by_sku, "stock_by_name": _stock_by_name, "total_stock": _total_stock,
    "order_cost": _order_cost, "restock": _restock, "best_warehouse": _best_warehouse,
}


def make_tasks(catalog: dict[str, Any], rng: random.Random, per_family: int = PER_FAMILY) -> list[Task]:
    """``per_family`` tasks of every family, interleaved, with ids ``wh-0000``, ``wh-0001``, ..."""
    by_family: list[list[Task]] = []
    for family, make in FAMILIES.items():
        tasks: list[Task] = []
        while len(tasks) < per_family:
            task = make(rng, rng.choice(catalog["items"]))
            if task is not None:
                tasks.append({"family": family, **task})
        by_family.append(tasks)
    rows = [t for group in zip(*by_family) for t in group]
    return [{"id": f"wh-{i:04d}", "question": t["question"], "answer": str(t["answer"]),
             "family": t["family"], "calls": t["calls"]} for i, t in enumerate(rows)]


def generate(seed: int = 0) -> tuple[str, str]:
    """The text of ``warehouse.json`` and of ``warehouse_tasks.jsonl`` for ``seed``."""
    rng = random.Random(seed)
    catalog = make_catalog(rng)
    tasks = make_tasks(catalog, rng)
    data = json.dumps(catalog, indent=1) + "\n"
    return data, "".join(json.dumps(t) + "\n" for t in tasks)


def main() -> None:
    data, tasks = generate()
    DATA_PATH.write_text(data, encoding="utf-8")
    TASKS_PATH.write_text(tasks, encoding="utf-8")
    print(f"wrote {DATA_PATH} and {TASKS_PATH} ({tasks.count(chr(10))} tasks)")


if __name__ == "__main__":
    main()
