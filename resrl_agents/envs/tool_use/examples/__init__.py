"""The bundled ToolUse example: warehouse tools (``warehouse.py``), their data and tasks
(``make_tasks.py`` writes ``warehouse.json`` and ``warehouse_tasks.jsonl``)."""

from pathlib import Path

EXAMPLE_TOOLS = "resrl_agents.envs.tool_use.examples.warehouse"
EXAMPLE_TASKS = Path(__file__).with_name("warehouse_tasks.jsonl")
