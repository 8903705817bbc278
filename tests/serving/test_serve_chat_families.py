"""The server answers a tool call, plain and streamed, to the official ``openai`` client for models
with their own chat templates (Llama-3.1, Gemma-3, Mistral v3, Qwen3 formats, ``tests/chat_families.py``).

Each tiny model first learns one tool-call answer by SFT (``trainers/sft.py``: the same template
path as the server), then the server renders the request with the model's template and tools,
stops at its turn end and reads the call in the family's format, detected from the template."""

from __future__ import annotations

import json

import openai
import pytest
import torch

from chat_families import build_family
from resrl_agents.config.eval_schema import ServeConfig
from resrl_agents.config.schema import ModelConfig
from resrl_agents.models import load_policy
from resrl_agents.rollout.policy import HFPolicy
from resrl_agents.serving.app import BackgroundServer, create_app
from resrl_agents.trainers.sft import sft_loss, tokenize_conversation

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
CALL = {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
# Gemma's template has no tool-call syntax: the model writes hermes calls as text (tool_format auto -> hermes)
ANSWER = {"gemma": {"role": "assistant", "content": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'}}


def teach(model, tok, family: str, max_steps: int = 300) -> None:
    """Fit the one tool-call conversation until the loss is near zero (50-80 tiny steps)."""
    answer = ANSWER.get(family, {"role": "assistant", "content": "", "tool_calls": [CALL]})
    ids, mask = tokenize_conversation(tok, ASK + [answer], [WEATHER])
    ids, mask = torch.tensor([ids]), torch.tensor([mask])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(max_steps):
        loss = sft_loss(model, ids, torch.ones_like(ids), mask)
        if loss.item() < 1e-2:  # every answer token above ~0.99: greedy decoding writes it
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert loss.item() < 2e-2, f"{family}: SFT did not fit the tool call (loss {loss.item():.3f})"


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama3", "gemma", "mistral", "qwen3"])
def test_served_tool_call_reaches_the_openai_client(family, tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, tok = load_policy(ModelConfig(name="hf", path=str(build_family(family, tmp_path / family))))
    teach(model, tok, family)
    app = create_app(HFPolicy(model, tok), tok, name=family, cfg=ServeConfig(max_wait_ms=1.0), context_len=4096)
    with BackgroundServer(app) as base_url, openai.OpenAI(base_url=base_url, api_key="x", max_retries=0,
                                                          timeout=120) as client:
        r = client.chat.completions.create(model=family, messages=ASK, tools=[WEATHER], max_tokens=64,
                                           temperature=0)
        plain = client.chat.completions.create(model=family, messages=ASK, max_tokens=16, temperature=0)
        chunks = list(client.chat.completions.create(model=family, messages=ASK, tools=[WEATHER], max_tokens=64,
                                                     temperature=0, stream=True))
    # the streamed call, rebuilt from OpenAI's deltas (name first, then argument pieces), is the same call
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas and deltas[0].function.name == "get_weather" and all(d.index == 0 for d in deltas)
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice.message.content
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert r.usage.completion_tokens < 64  # it stopped at the template's turn end
    assert plain.choices[0].message.tool_calls is None  # no tools in the request: the text is content
