"""A rollout ``Policy`` over any OpenAI-compatible chat endpoint, through the official client.

The agent loop hands a policy token ids (the prompt rendered by the chat template). An endpoint
takes chat messages and returns text, so this backend:

1. turns each prompt back into messages and tools: ``messages_from_prompt`` parses the ChatML
   rendering (tools from the system block) and checks that re-rendering gives the prompt text byte
   for byte (else it raises, so a prompt is never silently changed). When the caller passes
   ``messages=`` / ``tools=`` they are used as is.
2. sends them with those tools (as OpenAI tools) and the sampling settings; with ``send_seed``
   also a per-episode seed. Off by default: seeded requests make a run reproducible, but a server
   samples each seeded request on its own (``resrl_agents.serve`` ran 32 seeded requests as 32
   batches, 2x slower than unseeded ones batched together);
3. writes the reply back as the text the model itself would emit (``assistant_text``: content,
   then tool calls rendered by the chat template) and tokenizes it with the local tokenizer,
   appending EOS when the model stopped, so ``Generation`` looks like the local backends'.

Log-probs are not known through the chat API in token alignment with the local tokenizer, so
``Generation.logp`` is 0.0 everywhere: fine for evaluation, never for training.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import openai

from resrl_agents.config.errors import ConfigError
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.policy import Generation, SamplingParams
from resrl_agents.rollout.seeding import row_seed
from resrl_agents.tools.parsers import parse_tool_calls

_BLOCK = re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)<\|im_end\|>\n", re.DOTALL)
_TOOL_RESPONSE = re.compile(r"\n<tool_response>\n(.*?)\n</tool_response>", re.DOTALL)
_TOOLS = re.compile(r"<tools>\n(.*?)\n</tools>", re.DOTALL)
_PROBE = [{"role": "user", "content": "x"}]


def generation_prompt(renderer: ChatRenderer) -> str:
    """The text the template appends for ``add_generation_prompt`` (``<|im_start|>assistant\\n``)."""
    with_gen = renderer.render(_PROBE, add_generation_prompt=True)
    without = renderer.render(_PROBE, add_generation_prompt=False)
    if not with_gen.startswith(without):
        raise ValueError("the chat template's generation prompt is not a suffix of the conversation")
    return with_gen[len(without):]


def _tools_header(renderer: ChatRenderer, tools: list[dict]) -> str:
    """The system text the template writes for ``tools`` (after any system content)."""
    m = _BLOCK.match(renderer.render(_PROBE, add_generation_prompt=False, tools=tools))
    if m is None or m.group(1) != "system":
        raise ValueError("the chat template does not put tools in a ChatML system block")
    return m.group(2)


def _tools_in(system: str) -> list[dict] | None:
    """The tool schemas listed one JSON object per line in ``<tools>...</tools>``, if any."""
    m = _TOOLS.search(system)
    if m is None:
        return None
    try:
        tools = [json.loads(line) for line in m.group(1).split("\n")]
    except ValueError:
        return None
    return tools if all(isinstance(t, dict) for t in tools) else None


def _assistant_message(content: str, renderer: ChatRenderer) -> dict[str, Any]:
    """Assistant text -> an OpenAI assistant message, with structured ``tool_calls`` when the text
    is exactly what the template renders for them (else the text stays plain content)."""
    plain = {"role": "assistant", "content": content}
    parsed = parse_tool_calls(content, "hermes")
    if not parsed.calls or not parsed.ok:
        return plain
    calls = [{"id": "", "type": "function",
              "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
             for c in parsed.calls]
    structured = {"role": "assistant", "content": parsed.content or None, "tool_calls": calls}
    same = (renderer.render([structured], add_generation_prompt=False)
            == renderer.render([plain], add_generation_prompt=False))
    return structured if same else plain


def _link_tool_call_ids(messages: list[dict[str, Any]]) -> None:
    """Give tool calls ids ``call_<k>`` and each following tool message the id of its call."""
    k, pending = 0, []
    for m in messages:
        if m["role"] == "assistant":
            pending = []
            for call in m.get("tool_calls", []):
                call["id"] = f"call_{k}"
                pending.append(call["id"])
                k += 1
        elif m["role"] == "tool" and pending:
            m["tool_call_id"] = pending.pop(0)
        elif m["role"] == "tool":  # a response to a call written as plain text
            m["tool_call_id"] = f"call_{k}"
            k += 1


def messages_from_prompt(renderer: ChatRenderer, text: str) -> tuple[list[dict[str, Any]], list[dict] | None]:
    """Chat messages and tools whose rendering (generation prompt on) is ``text``.

    Raises ValueError when ``text`` is not such a rendering (another template, or content that
    contains ChatML markers): the request would otherwise show the model a different prompt.
    """
    gen = generation_prompt(renderer)
    if not text.endswith(gen):
        raise ValueError("prompt does not end with the chat template's generation prompt")
    body, pos, blocks = text[: len(text) - len(gen)], 0, []
    while pos < len(body):
        m = _BLOCK.match(body, pos)
        if m is None:
            raise ValueError(f"prompt is not a ChatML conversation at character {pos}")
        blocks.append((m.group(1), m.group(2)))
        pos = m.end()
    messages: list[dict[str, Any]] = []
    tools = _tools_in(blocks[0][1]) if blocks and blocks[0][0] == "system" else None
    if tools:
        header = _tools_header(renderer, tools)
        content = blocks.pop(0)[1]
        if not content.endswith(header):
            raise ValueError("prompt's system block does not end with the template's tools text")
        if content != header:
            messages.append({"role": "system", "content": content[: -len(header)].removesuffix("\n\n")})
    for role, content in blocks:
        # a run of tool messages is one user turn: "<|im_start|>user" + "\n<tool_response>\n...</tool_response>"*
        responses = _TOOL_RESPONSE.findall("\n" + content) if role == "user" else []
        if responses and "".join(f"\n<tool_response>\n{r}\n</tool_response>" for r in responses) == "\n" + content:
            messages += [{"role": "tool", "content": r} for r in responses]
        elif role == "assistant":
            messages.append(_assistant_message(content, renderer))
        else:
            messages.append({"role": role, "content": content})
    _link_tool_call_ids(messages)
    if renderer.render(messages, add_generation_prompt=True, tools=tools) != text:
        raise ValueError("prompt cannot be mapped back to chat messages that render to it exactly")
    return messages, tools


def assistant_text(renderer: ChatRenderer, content: str | None, tool_calls: Sequence[Any] | None,
                   tools: list[dict] | None = None) -> str:
    """The text the model writes for an assistant message: content, then the tool calls exactly as
    the chat template renders them (what the env's shared parser reads), without the turn end."""
    if not tool_calls:
        return content or ""
    calls = [{"type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
             for c in tool_calls]
    return renderer.split_turn(_PROBE, {"role": "assistant", "content": content or "", "tool_calls": calls}, tools)[0]


class OpenAIPolicy:
    """``Policy`` over an OpenAI-compatible endpoint (see the module docstring)."""

    accepts_messages = True  # ``generate(..., messages=, tools=)`` skips the prompt -> messages parse

    def __init__(self, client, model: str, renderer: ChatRenderer, *, concurrency: int = 16,
                 send_seed: bool = False):
        self.client, self.model, self.renderer = client, model, renderer
        self.concurrency, self.send_seed = max(1, concurrency), send_seed
        end_id = renderer.turn_end[1]  # the stop token the template closes a turn with
        self.eos_id = renderer.tokenizer.eos_token_id if end_id is None else end_id

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                 messages: Sequence[list[dict]] | None = None,
                 tools: Sequence[list[dict] | None] | None = None) -> list[Generation]:
        if messages is None:
            messages, tools = zip(*[messages_from_prompt(self.renderer, self.renderer.decode(p))
                                    for p in prompts]) if prompts else ((), ())
        tools = list(tools) if tools is not None else [None] * len(messages)
        seeds = [row_seed(params.seed, i) for i in range(len(messages))]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(len(messages), 1))) as pool:
            return list(pool.map(lambda m, t, s: self._one(m, t, s, params), messages, tools, seeds))

    def _one(self, messages: list[dict], tools: list[dict] | None, seed: int, params: SamplingParams) -> Generation:
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages,
                                  "max_tokens": params.max_new_tokens,
                                  "temperature": max(params.temperature, 0.0), "top_p": params.top_p}
        if tools:
            kwargs["tools"] = tools
        if self.send_seed:
            kwargs["seed"] = seed
        try:
            choice = self.client.chat.completions.create(**kwargs).choices[0]
        except openai.NotFoundError as e:
            raise ConfigError(f"policy.model={self.model}: {self.client.base_url} answered 404 ({e.message}); "
                              f"it serves {self._served()}. Check policy.model and policy.base_url") from e
        except openai.APIConnectionError as e:
            raise ConfigError(f"policy.base_url={self.client.base_url}: no connection ({e.message}); "
                              "is the server up?") from e
        text = assistant_text(self.renderer, choice.message.content, choice.message.tool_calls, tools)
        stopped = choice.finish_reason in ("stop", "tool_calls")
        ids = tuple(self.renderer.encode(text)) + ((self.eos_id,) if stopped else ())
        return Generation(ids, (0.0,) * len(ids), stopped)

    def _served(self) -> list[str] | str:
        """The model ids the endpoint lists, for an error message."""
        try:
            return [m.id for m in self.client.models.list()]
        except openai.OpenAIError:
            return "no model list (GET /models failed)"
