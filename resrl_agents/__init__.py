"""resrl-agents: RL for LLM agents with ResRL (negative-sample projection-residual RL).

Importing the package registers the env ids with Gymnasium (``resrl_agents.envs``: entry-point
strings only, no env module, torch or dataset is loaded), so after ``import resrl_agents``
``gymnasium.make("resrl_agents/ALFWorld-v0")`` works, as ``gym.register_envs(resrl_agents)`` expects.
"""

from resrl_agents import envs  # noqa: F401  (registers the env ids)

__version__ = "0.1.0"
