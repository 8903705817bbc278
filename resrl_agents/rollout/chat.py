"""Chat rendering for multi-turn rollouts without re-tokenizing history, with any chat template.

The prompt is rendered and tokenized once. After each turn only the *new* text is tokenized: the
template renders the conversation before and after the new messages and the difference is taken
(the part of the closed assistant turn the model did not generate itself, then the next
observation's wrapping). It is appended to the exact generated ids (ARCHITECTURE invariant 1).

This needs a template that never rewrites earlier turns once later messages arrive (ChatML,
Llama-3.1, Gemma, Mistral do not; Qwen3 drops earlier ``<think>`` traces). ``check_multiturn``
probes a template for that and ``continuation`` checks every turn, raising
``TemplateRewriteError`` rather than letting the trained tokens drift from what the template shows.

A template may normalise the model's own text when it re-renders a turn (Llama-3.1, Gemma and
Mistral trim an assistant message): the sequence keeps the generated ids, and only the context
after the turn comes from the template.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

from resrl_agents.tools.parsers import parse_tool_calls

_PROBE_USER = {"role": "user", "content": "probe task"}
_PROBE_ANSWER = "probe answer"
# a conversation whose earlier turns a rewriting template renders differently once it goes on
_PROBE_CHAT = [
    _PROBE_USER,
    {"role": "assistant", "content": "<think>\nprobe reasoning\n</think>\n\nprobe action"},
    {"role": "user", "content": "probe observation"},
    {"role": "assistant", "content": "probe second action"},
    {"role": "user", "content": "probe second observation"},
]
_PROBE_TOOL = {"type": "function", "function": {
    "name": "probe_fn", "description": "Probe.",
    "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}
_PROBE_CALL = {"id": "call00001", "type": "function", "function": {"name": "probe_fn", "arguments": {"x": 1}}}
_FIX = "use rollout.history=window:<k> (each turn re-renders its own prompt), or a template that keeps earlier turns"


class TemplateRewriteError(ValueError):
    """The chat template renders an earlier turn differently once later messages follow."""


@dataclass
class ChatRenderer:
    """Renders with the tokenizer's chat template; ``tools`` (OpenAI function schemas, fixed for
    an episode) go to the template exactly as serving passes a request's ``tools``."""

    tokenizer: Any

    def render(self, messages: list[dict], *, add_generation_prompt: bool, tools: list[dict] | None = None) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tools=tools or None, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def prompt(self, messages: list[dict], tools: list[dict] | None = None) -> tuple[str, list[int]]:
        text = self.render(messages, add_generation_prompt=True, tools=tools)
        return text, self.encode(text)

    @cached_property
    def turn_end(self) -> tuple[str, int | None]:
        """The special token the template writes right after an assistant message's content
        (``<|im_end|>``, Llama-3's ``<|eot_id|>``, Gemma's ``<end_of_turn>``, Mistral's ``</s>``):
        its text and id, or ``("", None)`` when the turn ends in plain text."""
        before, turn = self._turn([_PROBE_USER], {"role": "assistant", "content": _PROBE_ANSWER})
        span = turn[len(before):]
        ids = self.encode(span[span.find(_PROBE_ANSWER) + len(_PROBE_ANSWER):])
        special = set(self.tokenizer.all_special_ids) | set(self.tokenizer.added_tokens_decoder)
        if not ids or ids[0] not in special:
            return "", None
        return self.decode(ids[:1]), ids[0]

    def assistant_content(self, action_ids, stopped: bool | None = None) -> str:
        """The assistant message text of generated ids, without the stop token they end with.

        ``stopped``: whether the last id is the stop token the policy stopped at; None reads it
        from the id (the tokenizer's eos or the template's turn end)."""
        ids = list(action_ids)
        if stopped is None:
            stopped = bool(ids) and ids[-1] in {self.tokenizer.eos_token_id, self.turn_end[1]}
        return self.decode(ids[:-1] if stopped and ids else ids)

    def _turn(self, history: list[dict], message: dict, tools: list[dict] | None = None) -> tuple[str, str]:
        """The rendering of ``history`` with the generation prompt, and of ``history + [message]``
        (an assistant turn); the first must be a prefix of the second."""
        before = self.render(history, add_generation_prompt=True, tools=tools)
        turn = self.render(history + [message], add_generation_prompt=False, tools=tools)
        if not turn.startswith(before):
            raise TemplateRewriteError("the chat template renders the conversation before an assistant turn "
                                       f"differently once the turn is added (first change: {_change(before, turn)}); "
                                       + _FIX)
        return before, turn

    def split_turn(self, history: list[dict], message: dict, tools: list[dict] | None = None) -> tuple[str, str]:
        """The assistant ``message`` after ``history`` as the template renders it, split into the
        model's text (content and tool calls in the template's own format; what SFT teaches) and
        the closing text after it (turn-end token, separators)."""
        return self._split(*self._turn(history, message, tools), message)

    def _split(self, before: str, turn: str, message: dict) -> tuple[str, str]:
        span = turn[len(before):]
        end_text = self.turn_end[0]
        content = (message.get("content") or "").strip()
        if end_text and end_text in span:
            cut = span.rfind(end_text)
        elif content and content in span:
            cut = span.rfind(content) + len(content)
        else:
            cut = len(span)
        return span[:cut], span[cut:]

    def continuation(self, history: list[dict], message: dict, action_ids: Sequence[int], stopped: bool,
                     new: list[dict], tools: list[dict] | None = None) -> str:
        """Text the template puts after the generated ``action_ids`` when ``new`` messages follow.

        ``history`` ends before the assistant turn ``message`` (the generated text as its
        ``content``, or content and ``tool_calls`` whose rendering was generated). When the
        policy stopped at the template's turn-end token, the closing text after that token
        follows; when it was cut (max tokens), the whole closing does. Raises
        ``TemplateRewriteError`` when the template re-renders the conversation so far differently.
        """
        before, turn = self._turn(history, message, tools)
        _, closing = self._split(before, turn, message)
        after = self.render(history + [message] + new, add_generation_prompt=True, tools=tools)
        if not after.startswith(turn):
            raise TemplateRewriteError(
                "the chat template re-renders earlier turns differently once new messages follow (Qwen3 drops "
                "earlier reasoning, Mistral v3 moves the system prompt to the last user message), so the 'full' "
                f"history layout would train on tokens the model never sees (first change: {_change(turn, after)}); "
                + _FIX)
        end_text, end_id = self.turn_end
        if stopped and end_id is not None and list(action_ids)[-1:] == [end_id] and closing.startswith(end_text):
            closing = closing[len(end_text):]
        return closing + after[len(turn):]

    def check_multiturn(self, first: list[dict], tools: list[dict] | None = None) -> None:
        """Raise ``TemplateRewriteError`` when the template cannot grow one exact token sequence turn
        by turn: probed with an episode's ``first`` messages and ``tools``, then a few turns
        holding a reasoning trace."""
        chat = list(first) + _PROBE_CHAT[1:]
        for i, message in enumerate(chat):
            if i >= len(first) and message["role"] == "assistant":
                ids = self.encode(message["content"] + self.turn_end[0])
                self.continuation(chat[:i], message, ids, True, chat[i + 1:i + 2], tools)

    def tool_format(self) -> str:
        """The tool-call format (``tools/parsers.py``) the template writes an assistant's
        ``tool_calls`` in: the first of mistral, hermes, llama3_json, pythonic whose parser reads a
        probe call back; ``hermes`` (the project's) when the template writes no tool calls."""
        message = {"role": "assistant", "content": "", "tool_calls": [_PROBE_CALL]}
        try:
            text = self.split_turn([_PROBE_USER], message, [_PROBE_TOOL])[0]
        except Exception:  # noqa: BLE001  (a template without tool support may raise on tool_calls)
            return "hermes"
        for fmt in ("mistral", "hermes", "llama3_json", "pythonic"):
            parsed = parse_tool_calls(text, fmt)
            if parsed.ok and [(c.name, c.arguments) for c in parsed.calls] == [("probe_fn", {"x": 1})]:
                return fmt
        return "hermes"


def _change(old: str, new: str, context: int = 40) -> str:
    """Where ``new`` stops extending ``old``: the two texts around the first differing character."""
    i = next((k for k, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
    return f"{old[max(0, i - context): i + context]!r} became {new[max(0, i - context): i + context]!r}"


def resolve_tool_format(setting: str, renderer: ChatRenderer) -> str:
    """``model.tool_format``: ``auto`` reads the format from the chat template, anything else
    must be a parser format."""
    if setting == "auto":
        return renderer.tool_format()
    formats = ("hermes", "json", "llama3_json", "mistral", "pythonic")
    if setting not in formats:
        raise ValueError(f"model.tool_format={setting!r} is not a tool-call format; use auto or one of {formats}")
    return setting
