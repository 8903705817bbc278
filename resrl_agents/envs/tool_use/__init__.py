"""Tool-use env (``resrl_agents/ToolUse-v0``): an agent learns to answer questions with the user's
own tools.

* ``loading.py``: tool specs (modules, ``module:function``, ``.py`` files, JSON/YAML schemas with
  an implementation module) and the tasks jsonl.
* ``answer.py``: ``<answer>`` extraction and matching (math-verify, exact, contains).
* ``env.py``: :class:`ToolUseEnv`.
* ``examples/``: the bundled warehouse tools, their data and 360 tasks with expert plans.
"""

from resrl_agents.envs.tool_use.env import ToolUseEnv
from resrl_agents.envs.tool_use.loading import ToolTask, load_tasks, load_tool_specs

__all__ = ["ToolTask", "ToolUseEnv", "load_tasks", "load_tool_specs"]
