"""Incremental text of one streamed choice: tokens in, OpenAI deltas out, as they are generated.

After every token the row's text is decoded again (``text_of``: the same function the plain
response uses, so the streamed pieces join to the plain completion) and the part that can no
longer change is sent. Held back until it is settled: a trailing incomplete UTF-8 character, a
tail that may be the start of a stop string, and, when the request has tools, a tail that may be
the start of the tool-call marker.

Tool calls: in a format with a start marker (hermes ``<tool_call>``), content is streamed up to
the marker; the block is then buffered until it closes, parsed by the shared parser and validated
against the request's tools; a valid call goes out as OpenAI tool-call deltas (index, id and
function name, then argument fragments), an invalid one as the text the model wrote. A format
without a marker (json, pythonic, auto) may be a call from its first character, so with tools
its message is sent when generation ends, read like the plain response.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from resrl_agents.serving.responses import apply_stop, build_choice, openai_call, valid_calls
from resrl_agents.tools.parsers import Format, parse_tool_calls
from resrl_agents.tools.registry import ToolRegistry

MARKERS: dict[str, tuple[str, str]] = {"hermes": ("<tool_call>", "</tool_call>")}  # format -> (open, close)
ARG_PIECE_CHARS = 16  # characters of a call's arguments per delta


def held_tail(text: str, words: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of one of ``words``."""
    best = 0
    for w in words:
        for n in range(min(len(w) - 1, len(text)), best, -1):
            if text.endswith(w[:n]):
                best = n
                break
    return best


def call_deltas(k: int, call: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenAI streaming deltas of tool call number ``k`` (a message's ``tool_calls`` entry): id,
    type and name with empty arguments, then the arguments' JSON in fragments."""
    args = call["function"]["arguments"]
    head = {"index": k, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"],
                                                                          "arguments": ""}}
    pieces = [args[i:i + ARG_PIECE_CHARS] for i in range(0, len(args), ARG_PIECE_CHARS)]
    return [{"tool_calls": [head]}] + [{"tool_calls": [{"index": k, "function": {"arguments": p}}]} for p in pieces]


class ChoiceStream:
    """One choice of a streamed response. ``push`` each generated token, then ``close``; both
    return the deltas that became final. ``finish_reason`` is set once the choice is over (a stop
    string ends it early: later tokens are ignored)."""

    def __init__(self, text_of: Callable[[Sequence[int]], str], *, stops: Sequence[str] = (),
                 registry: ToolRegistry | None = None, tool_choice: Any = None, fmt: Format = "hermes"):
        self.text_of, self.stops, self.fmt = text_of, list(stops), fmt
        self.registry, self.tool_choice = registry, tool_choice
        self.tools = registry is not None and len(registry) > 0 and tool_choice != "none"
        self.marker = MARKERS.get(fmt) if self.tools else None
        self.ids: list[int] = []
        self.sent = 0  # characters of the text already turned into deltas
        self.calls = 0  # tool calls sent
        self.space = ""  # whitespace held back after content (tools only)
        self.finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int) -> list[dict[str, Any]]:
        if self.done:
            return []
        self.ids.append(token)
        text, cut = apply_stop(self.text_of(self.ids), self.stops)
        if cut:
            return self._final(text, "stop")
        end = len(text) - held_tail(text, self.stops + ([self.marker[0]] if self.marker else []))
        while end > 0 and text[end - 1] == "\ufffd":  # an incomplete UTF-8 character
            end -= 1
        return self._advance(text, end, final=False)

    def close(self, stopped: bool) -> list[dict[str, Any]]:
        """The rest once generation ended (``stopped``: by EOS, else at the token budget)."""
        if self.done:
            return []
        text, _ = apply_stop(self.text_of(self.ids), self.stops)
        return self._final(text, "stop" if stopped else "length")

    def _final(self, text: str, reason: str) -> list[dict[str, Any]]:
        if self.tools and self.marker is None:  # the whole message, read like the plain response
            choice = build_choice(0, text, stopped=True, completion_tokens=0, registry=self.registry,
                                  tool_choice=self.tool_choice, fmt=self.fmt)
            calls = choice.message.get("tool_calls") or []
            out = [{"content": choice.message["content"]}] if choice.message["content"] else []
            for k, c in enumerate(calls):
                out += call_deltas(k, c)
            self.calls, self.sent = len(calls), len(text)
        else:
            out = self._advance(text, len(text), final=True)
            if self.space and not self.calls:  # no call followed: the whitespace is content
                out.append({"content": self.space})
        self.finish_reason = "tool_calls" if self.calls else reason
        return out

    def _advance(self, text: str, end: int, *, final: bool) -> list[dict[str, Any]]:
        """Deltas for ``text[self.sent:end]``; a tool-call block waits for its closing tag."""
        if self.tools and self.marker is None:
            return []
        out: list[dict[str, Any]] = []
        while self.sent < end:
            start = text.find(self.marker[0], self.sent, end) if self.marker else -1
            if start < 0:
                out += self._content(text[self.sent:end])
                self.sent = end
            elif start > self.sent:
                out += self._content(text[self.sent:start])
                self.sent = start
            else:
                close = text.find(self.marker[1], start)
                if close < 0 and not final:
                    break  # the call is still being written
                stop = len(text) if close < 0 else close + len(self.marker[1])
                out += self._block(text[start:stop])
                self.sent = stop
        return out

    def _content(self, piece: str) -> list[dict[str, Any]]:
        """A content delta. With tools, trailing whitespace waits for more text: the plain
        response strips it when a call follows (and drops the whitespace between calls)."""
        if self.tools:
            piece = self.space + piece
            body = piece.rstrip()
            piece, self.space = body, piece[len(body):]
        return [{"content": piece}] if piece else []

    def _block(self, block: str) -> list[dict[str, Any]]:
        """One complete (or, at the end, unclosed) tool-call block."""
        parsed = parse_tool_calls(block, self.fmt)
        if not valid_calls(parsed, self.registry, self.tool_choice):
            return self._content(block)
        self.space = ""  # the plain response strips the whitespace before a call
        out = []
        for c in parsed.calls:
            out += call_deltas(self.calls, openai_call(c))
            self.calls += 1
        return out
