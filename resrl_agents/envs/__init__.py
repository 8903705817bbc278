"""Text envs (Gymnasium-shaped) and their registry.

Importing this package registers the env ids below with Gymnasium by entry-point string, so it
stays light: no env module, verifier or dataset is loaded until ``gymnasium.make``. Registration is
idempotent (importing or reloading twice neither warns nor re-registers). Ids carry a version;
any change to a prompt, reward or termination rule bumps it.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from resrl_agents.envs.base import MAX_TEXT, AnyText, ResetInfo, StepInfo, TextEnv

NAMESPACE = "resrl_agents"

# id -> entry point ("module:Class"). Add new envs here; the checker test picks them up.
ENV_ENTRY_POINTS: dict[str, str] = {
    f"{NAMESPACE}/Math-v0": "resrl_agents.envs.math:MathEnv",
    f"{NAMESPACE}/WebShop-v0": "resrl_agents.envs.webshop.env:WebShopEnv",
    f"{NAMESPACE}/Code-v0": "resrl_agents.envs.code:CodeEnv",
    f"{NAMESPACE}/BFCL-v0": "resrl_agents.envs.bfcl.env:BFCLEnv",
    f"{NAMESPACE}/ALFWorld-v0": "resrl_agents.envs.alfworld:ALFWorldEnv",
    f"{NAMESPACE}/ToolUse-v0": "resrl_agents.envs.tool_use.env:ToolUseEnv",
    f"{NAMESPACE}/Dataset-v0": "resrl_agents.envs.dataset:DatasetEnv",
}


def register_envs() -> None:
    """Register every id of ``ENV_ENTRY_POINTS`` that Gymnasium does not know yet."""
    for env_id, entry_point in ENV_ENTRY_POINTS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point)


register_envs()

__all__ = ["ENV_ENTRY_POINTS", "MAX_TEXT", "NAMESPACE", "AnyText", "ResetInfo", "StepInfo",
           "TextEnv", "register_envs"]
