"""The project's chat template (ChatML with Qwen2.5-style tool calls): the template of the tiny
model and SmolLM2, and the fallback of a checkpoint that has none (``model=hf`` keeps its own).

Training, eval and serving render prompts with the policy's one template (ARCHITECTURE invariant 5).
It is kept in ``chat_template.jinja`` so that it can be read and diffed as a template.

Properties the rest of the code relies on (tested in ``tests/models/test_chat_template.py``):
  * prefix-stable: rendering ``msgs + new`` starts with the rendering of ``msgs``, except when
    the split falls inside a run of consecutive ``tool`` messages (they share one user turn, so
    append them together);
  * ``render(msgs, add_generation_prompt=True)`` is a prefix of ``render(msgs + [assistant])``;
  * the assistant content, its tool calls and the closing ``<|im_end|>`` form the
    ``{% generation %}`` span, so ``return_assistant_tokens_mask=True`` marks what the policy
    must learn to emit (stopping included); the ``\\n`` after ``<|im_end|>`` is context.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE: str = Path(__file__).with_name("chat_template.jinja").read_text(encoding="utf-8")

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"
