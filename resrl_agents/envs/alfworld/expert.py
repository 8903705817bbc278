"""The ALFWorld expert's answer: the planner's next command with a short thought naming the sub-goal.

The plan comes from :meth:`AlfredEngine.plan` (TextWorld's ``policy_commands``, the PDDL planner
that ``AlfredTWEnv``'s ``expert_type: planner`` uses). The thought only states what the plan
does: the next step that changes an object (take, move, heat, cool, clean, use, ...), reached via
the moves ("go to", "open", "close") before it. Pure text: no textworld import.
"""

from __future__ import annotations

from collections.abc import Sequence

# Commands that only bring the agent to (or into) a receptacle: the means, not a sub-goal.
MOVES: tuple[str, ...] = ("go to ", "open ", "close ")


def subgoal(plan: Sequence[str]) -> str | None:
    """The plan's first command that is not a move, or None when it only moves."""
    return next((c for c in plan if not c.startswith(MOVES)), None)


def thought(task: str, plan: Sequence[str]) -> str:
    """One or two sentences on why ``plan[0]`` comes next (``plan`` non-empty)."""
    action, goal = plan[0], subgoal(plan)
    clause = task.strip().rstrip(".") or "finish the task"
    if len(plan) == 1:
        return f"One step is left: {action} completes the task ({clause})."
    if goal is None or goal == action:
        return f"To {clause}, my next step is to {action}."
    return f"To {clause}, I need to {goal}, so first I {action}."


def expert_answer(task: str, plan: Sequence[str]) -> str:
    """The whole model answer for ``plan[0]`` in the env's ReAct format."""
    return f"<think>{thought(task, plan)}</think><action>{plan[0]}</action>"


def on_walkthrough(walkthrough: Sequence[str], played: Sequence[str]) -> str | None:
    """The walkthrough's next command while ``played`` is still its prefix, else None."""
    n = len(played)
    if n < len(walkthrough) and list(walkthrough[:n]) == list(played):
        return walkthrough[n]
    return None
