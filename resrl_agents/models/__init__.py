"""Policies: the tiny offline Qwen3 model, SmolLM2-135M-Instruct, or any HF checkpoint.

tiny and smollm2 speak the project's ChatML template (``CHAT_TEMPLATE``) with ``<|im_end|>`` as
eos; an ``hf`` checkpoint keeps its own chat template (``rollout/chat.py`` works with any).
"""

from resrl_agents.models.chat_template import CHAT_TEMPLATE
from resrl_agents.models.common import resolve_dtype
from resrl_agents.models.loading import load_policy
from resrl_agents.models.smollm2 import load_smollm2
from resrl_agents.models.tiny import build_tiny, load_tiny

__all__ = [
    "CHAT_TEMPLATE", "build_tiny", "load_policy", "load_smollm2", "load_tiny", "resolve_dtype",
]
