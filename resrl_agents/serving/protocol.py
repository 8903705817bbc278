"""The OpenAI request schemas the server accepts (chat completions and legacy completions), and
OpenAI-style errors.

Requests are validated here (pydantic) and every problem becomes an :class:`APIError` whose body
is OpenAI's ``{"error": {"message", "type", "param", "code"}}``. Tool schemas are checked with the
project's own validator (``tools/schema.py``), the one training uses.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from resrl_agents.tools.schema import ToolSchemaError, validate_tool_schema


class APIError(Exception):
    """An error answered with ``status`` and an OpenAI-style body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown OpenAI fields are accepted and ignored


class FunctionCall(_Model):
    name: str
    arguments: str = "{}"


class ToolCallIn(_Model):
    id: Optional[str] = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(_Model):
    type: str
    text: Optional[str] = None


class Message(_Model):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[ContentPart], None] = None
    name: Optional[str] = None
    tool_calls: Optional[list[ToolCallIn]] = None
    tool_call_id: Optional[str] = None

    def text(self) -> str:
        """The content as text; only text parts are supported."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        bad = [p.type for p in self.content if p.type != "text"]
        if bad:
            raise APIError(400, f"content parts of type {bad[0]!r} are not supported (text only)",
                           param="messages")
        return "".join(p.text or "" for p in self.content)


class NamedFunction(_Model):
    name: str


class NamedToolChoice(_Model):
    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(_Model):
    include_usage: bool = False


class _Sampling(_Model):
    """Fields shared by both endpoints."""

    model: str
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: Optional[int] = Field(None, ge=1)
    n: int = Field(1, ge=1)
    stop: Union[str, list[str], None] = None
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    seed: Optional[int] = Field(None, ge=0, lt=2**63)

    @field_validator("stop")
    @classmethod
    def _stop(cls, v):
        stops = [v] if isinstance(v, str) else (v or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop must be up to 4 non-empty strings")
        return stops

    def stops(self) -> list[str]:
        return list(self.stop or [])

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    tools: Optional[list[dict[str, Any]]] = None
    tool_choice: Union[Literal["none", "auto", "required"], NamedToolChoice, None] = None
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = Field(None, ge=0, le=20)

    def budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def top_k(self) -> int | None:
        """None without log-probs, else how many alternatives each token lists."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def template_messages(self) -> list[dict[str, Any]]:
        """Messages as the chat template reads them (developer -> system, content as text)."""
        out = []
        for m in self.messages:
            msg: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            if m.tool_calls:
                msg["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.function.name, "arguments": c.function.arguments}}
                                     for c in m.tool_calls]
            if m.tool_call_id is not None:
                msg["tool_call_id"] = m.tool_call_id
            out.append(msg)
        return out


class CompletionRequest(_Sampling):
    """``/v1/completions``: a text prompt or token ids (or a list of either: one prompt each)."""

    prompt: Union[str, list[str], list[int], list[list[int]]]
    max_tokens: Optional[int] = Field(16, ge=1)
    logprobs: Optional[int] = Field(None, ge=0, le=5)
    echo: bool = False

    def prompts(self) -> list[str | list[int]]:
        p = self.prompt
        if isinstance(p, str) or (p and isinstance(p[0], int)):
            return [p]
        return list(p)

    def budget(self) -> int | None:
        return self.max_tokens

    def top_k(self) -> int | None:
        return self.logprobs


def _validated(body: bytes, schema: type[_Sampling], max_n: int):
    """Bytes -> a validated ``schema``, or an :class:`APIError` (400) naming the bad field."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise APIError(400, f"request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object")
    try:
        req = schema.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        raise APIError(400, f"{param}: {err['msg']}" if param else err["msg"], param=param) from None
    if req.n > max_n:
        raise APIError(400, f"n must be at most {max_n} on this server (serve.max_n), got {req.n}", param="n")
    return req


def parse_completion_request(body: bytes, *, max_n: int) -> CompletionRequest:
    """A validated ``/v1/completions`` request, or a 400 naming the field."""
    req = _validated(body, CompletionRequest, max_n)
    if req.echo:
        raise APIError(400, "echo is not supported by this server; leave it false", param="echo")
    if not req.prompts() or any(len(p) == 0 for p in req.prompts()):
        raise APIError(400, "prompt must not be empty", param="prompt")
    return req


def parse_request(body: bytes, *, max_n: int) -> ChatRequest:
    """A validated chat request, or an :class:`APIError` (400) naming the bad field."""
    req = _validated(body, ChatRequest, max_n)
    if req.top_logprobs is not None and not req.logprobs:
        raise APIError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    for i, t in enumerate(req.tools or []):
        try:
            validate_tool_schema(t, where=f"tools[{i}]")
        except ToolSchemaError as e:
            raise APIError(400, str(e), param=f"tools.{i}") from None
    _check_tool_choice(req)
    return req


def _check_tool_choice(req: ChatRequest) -> None:
    if isinstance(req.tool_choice, NamedToolChoice):
        names = [t.get("function", t).get("name") for t in req.tools or []]
        if req.tool_choice.function.name not in names:
            raise APIError(400, f"tool_choice names {req.tool_choice.function.name!r}, which is not in tools",
                           param="tool_choice")
    elif req.tool_choice in ("auto", "required") and not req.tools:
        raise APIError(400, f"tool_choice {req.tool_choice!r} needs tools", param="tool_choice")
