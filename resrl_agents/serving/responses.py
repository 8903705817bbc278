"""OpenAI response bodies from generated text: tool calls, stop strings, log-probs, SSE events.

The model's text is read with the project's one tool-call parser (``tools/parsers.py``) and each
call is validated against the request's tool schemas with ``ToolRegistry.validate`` (the check
training envs apply). When every call parses and validates, the message carries ``tool_calls`` and
``finish_reason`` is ``"tool_calls"``; otherwise the text is returned as plain content, so a
malformed call reaches the client as the text the model wrote, never as a silently fixed call.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

from transformers.convert_slow_tokenizer import bytes_to_unicode

from resrl_agents.serving.batcher import TokenLogprob
from resrl_agents.tools.parsers import Format, ParseResult, ToolCall, parse_tool_calls
from resrl_agents.tools.registry import ToolRegistry


@dataclass(frozen=True)
class Choice:
    """One completion choice: the OpenAI assistant message and why generation ended."""

    index: int
    message: dict[str, Any]
    finish_reason: str  # stop | length | tool_calls
    completion_tokens: int


def apply_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the first stop string (OpenAI leaves the stop string out)."""
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def openai_call(c: ToolCall) -> dict[str, Any]:
    """A parsed call as an entry of OpenAI's ``tool_calls`` (arguments as a JSON string)."""
    return {"id": c.id or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}


def valid_calls(parsed: ParseResult, registry: ToolRegistry, tool_choice: Any) -> bool:
    """Whether ``parsed`` holds calls, all well-formed, valid for their tool's schema and, when
    ``tool_choice`` names a function, all of that function."""
    only = getattr(getattr(tool_choice, "function", None), "name", None)
    return bool(parsed.calls) and parsed.ok and all(
        registry.validate(c) is None and (only is None or c.name == only) for c in parsed.calls)


def build_choice(index: int, text: str, *, stopped: bool, completion_tokens: int, stops: Sequence[str] = (),
                 registry: ToolRegistry | None = None, tool_choice: Any = None, fmt: Format = "hermes") -> Choice:
    """The choice for the model's raw ``text`` (EOS already removed). ``registry`` holds the
    request's tools (None: no tools); ``tool_choice`` "none" disables parsing, a named function
    accepts only calls of that function."""
    text, cut = apply_stop(text, stops)
    finish = "stop" if stopped or cut else "length"
    if registry is not None and len(registry) and tool_choice != "none":
        parsed = parse_tool_calls(text, fmt)
        if valid_calls(parsed, registry, tool_choice):
            calls = [openai_call(c) for c in parsed.calls]
            message = {"role": "assistant", "content": parsed.content or None, "tool_calls": calls}
            return Choice(index, message, "tool_calls", completion_tokens)
    return Choice(index, {"role": "assistant", "content": text}, finish, completion_tokens)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_body(rid: str, created: int, model: str, choices: Sequence[Choice], prompt_tokens: int,
                    logprobs: Sequence[dict | None] | None = None) -> dict:
    """A ``chat.completion`` object (``logprobs``: one ``{"content": [...]}`` per choice)."""
    lps = logprobs or [None] * len(choices)
    return {"id": rid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": c.index, "message": c.message, "finish_reason": c.finish_reason, "logprobs": lp}
                        for c, lp in zip(choices, lps)],
            "usage": usage(prompt_tokens, sum(c.completion_tokens for c in choices))}


def sse(body: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def reported_tokens(text_of: Callable[[Sequence[int]], str], ids: Sequence[int], stops: Sequence[str],
                    eos_ids: Sequence[int]) -> int:
    """How many of ``ids`` a response's log-probs cover: up to the token where a stop string
    appeared, else all but a final EOS (the streamed choice stops at the same token)."""
    if stops:
        for k in range(1, len(ids) + 1):
            if apply_stop(text_of(ids[:k]), stops)[1]:
                return k
    return len(ids) - 1 if ids and ids[-1] in eos_ids else len(ids)


class TokenTexts:
    """A token id's text and UTF-8 bytes, as OpenAI's log-probs show them. Byte-level BPE tokens
    map back to their exact bytes (a token may hold part of a character); other tokenizers'
    tokens are decoded alone."""

    _BYTE_OF = {ch: b for b, ch in bytes_to_unicode().items()}

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.piece = lru_cache(maxsize=1 << 16)(self._piece)

    def _piece(self, token: int) -> tuple[str, list[int]]:
        name = self.tokenizer.convert_ids_to_tokens(token)
        if isinstance(name, str) and name and all(ch in self._BYTE_OF for ch in name):
            raw = bytes(self._BYTE_OF[ch] for ch in name)
        else:
            raw = self.tokenizer.decode([token], skip_special_tokens=False).encode()
        return raw.decode("utf-8", errors="replace"), list(raw)

    def chat(self, entries: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
        """``choices[].logprobs.content`` entries: token, logprob, bytes, top_logprobs."""
        out = []
        for e in entries:
            text, raw = self.piece(e.token)
            top = [{"token": t, "logprob": lp, "bytes": b} for (t, b), lp in
                   ((self.piece(i), lp) for i, lp in e.top)]
            out.append({"token": text, "logprob": e.logprob, "bytes": raw, "top_logprobs": top})
        return out

    def legacy(self, entries: Sequence[TokenLogprob], start: int = 0) -> dict[str, list]:
        """``/v1/completions`` log-probs: tokens, token_logprobs, top_logprobs (token -> logprob)
        and text_offset (character offset of each token in the completion text; the first of
        these ``entries`` is at ``start``)."""
        tokens = [self.piece(e.token)[0] for e in entries]
        offsets = [start]
        for t in tokens[:-1]:
            offsets.append(offsets[-1] + len(t))
        return {"tokens": tokens, "token_logprobs": [e.logprob for e in entries],
                "top_logprobs": [{self.piece(i)[0]: lp for i, lp in e.top} for e in entries],
                "text_offset": offsets[:len(tokens)]}
