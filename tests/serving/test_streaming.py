"""Real streaming, tool-call deltas, log-probs, /v1/completions and n on a uvicorn server on
127.0.0.1, driven by the official `openai` client. The tool-call tests serve a copy of the tiny
model fine-tuned (a few seconds of SFT) to answer with a hermes tool call."""

from __future__ import annotations

import copy
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import torch

from resrl_agents.config.eval_schema import ServeConfig
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.policy import HFPolicy, SamplingParams
from resrl_agents.serving.app import BackgroundServer, create_app
from resrl_agents.trainers.sft import pad, sft_loss, tokenize_conversation

MSGS = [{"role": "user", "content": "Tell me a long story about the sea."}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def _serve(model, tok, **cfg):
    app = create_app(HFPolicy(model, tok), tok, name="tiny", context_len=4096,
                     cfg=ServeConfig(max_batch_size=8, max_wait_ms=50.0, max_n=4, **cfg))
    return app, BackgroundServer(app)


@pytest.fixture(scope="module")
def server(tiny):
    app, bg = _serve(*tiny)
    with bg as base_url, openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=120) as client:
        yield client, app


@pytest.fixture(scope="module")
def tool_server(tiny):
    """The tiny model taught to answer ASK with 'Let me check.' and a get_weather call."""
    model, tok = tiny
    model = copy.deepcopy(model).train()
    answer = {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
    ids, attn, mask = pad([tokenize_conversation(tok, ASK + [answer], [WEATHER])], tok.pad_token_id)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(120):
        loss = sft_loss(model, ids, attn, mask)
        if loss.item() < 0.005:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    _, bg = _serve(model, tok)
    with bg as base_url, openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=120) as client:
        yield client


def test_chunks_arrive_while_the_batch_is_still_decoding(server):
    client, app = server
    kw = dict(model="tiny", messages=MSGS, max_tokens=150, temperature=0)
    plain = client.chat.completions.create(**kw)
    assert plain.usage.completion_tokens >= 100  # long enough for the timing below to mean something
    answered = app.state.batcher.stats.requests
    start, arrivals, text, during = time.monotonic(), [], "", None
    for chunk in client.chat.completions.create(**kw, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - start)
            text += chunk.choices[0].delta.content
            if during is None:  # the generate call that makes this answer has not returned yet
                during = app.state.batcher.stats.requests == answered
        finish = chunk.choices[0].finish_reason if chunk.choices else None
    total = time.monotonic() - start
    assert during and len(arrivals) > 1
    assert arrivals[0] < total / 2 and arrivals[-1] - arrivals[0] > total / 4  # spread over the generation
    assert text == plain.choices[0].message.content and finish == plain.choices[0].finish_reason


def test_concurrent_streams_share_batches(server):
    client, app = server
    questions = [[{"role": "user", "content": f"What is {i} + {i}?"}] for i in range(6)]
    plain = [client.chat.completions.create(model="tiny", messages=q, max_tokens=20, temperature=0)
             .choices[0].message.content for q in questions]
    before = app.state.batcher.stats.batches

    def stream(q):
        chunks = client.chat.completions.create(model="tiny", messages=q, max_tokens=20, temperature=0, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    with ThreadPoolExecutor(6) as pool:
        streamed = list(pool.map(stream, questions))
    assert streamed == plain and app.state.batcher.stats.batches - before < 6  # batched, each stream its own


def _rescore(model, prompt: list[int], gen: list[int]) -> list[float]:
    """log p(gen[t] | prompt, gen[:t]) from one forward of the model."""
    ids = torch.tensor([prompt + gen])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)  # (T, V)
    return [logp[len(prompt) + t - 1, g].item() for t, g in enumerate(gen)]


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_logprobs_match_a_rescoring_with_the_model(tiny, server, temperature):
    model, tok = tiny
    client, _ = server
    kw = dict(model="tiny", messages=MSGS, max_tokens=24, temperature=temperature, seed=5, logprobs=True,
              top_logprobs=3)
    r = client.chat.completions.create(**kw)
    prompt = ChatRenderer(tok).prompt(MSGS)[1]
    [gen] = HFPolicy(model, tok).generate([prompt], SamplingParams(24, temperature, 1.0, 5))  # same seed, alone
    ids = [t for t in gen.ids if t != tok.eos_token_id]
    entries = r.choices[0].logprobs.content
    expected = _rescore(model, prompt, ids)
    assert len(entries) == len(ids)
    assert all(abs(e.logprob - x) < 1e-4 for e, x in zip(entries, expected))
    assert abs(sum(e.logprob for e in entries) - sum(expected)) < 1e-4
    assert bytes(b for e in entries for b in e.bytes).decode(errors="replace") == r.choices[0].message.content
    for e in entries:
        assert len(e.top_logprobs) == 3 and e.top_logprobs[0].logprob >= e.logprob - 1e-6
        assert e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob >= e.top_logprobs[2].logprob
    streamed = [e for c in client.chat.completions.create(**kw, stream=True)
                if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [(e.token, round(e.logprob, 5)) for e in streamed] == [(e.token, round(e.logprob, 5)) for e in entries]


def test_completions_text_and_token_prompts(tiny, server):
    model, tok = tiny
    client, _ = server
    prompt = "The answer is"
    ids = tok(prompt)["input_ids"]
    [gen] = HFPolicy(model, tok).generate([ids], SamplingParams(12, 0.0, 1.0, 0))
    expected = ChatRenderer(tok).assistant_content(gen.ids)
    r = client.completions.create(model="tiny", prompt=prompt, max_tokens=12, temperature=0, logprobs=2)
    assert r.object == "text_completion" and r.choices[0].text == expected
    assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == len(gen.ids)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == expected and all(len(t) == 2 for t in lp.top_logprobs)
    assert all(abs(a - b) < 1e-4 for a, b in zip(lp.token_logprobs, _rescore(model, ids, list(gen.ids))))
    by_ids = client.completions.create(model="tiny", prompt=ids, max_tokens=12, temperature=0)
    assert by_ids.choices[0].text == expected
    chunks = list(client.completions.create(model="tiny", prompt=prompt, max_tokens=12, temperature=0, stream=True,
                                            logprobs=2))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected
    assert sum(bool(c.choices and c.choices[0].text) for c in chunks) > 1
    streamed = {key: [x for c in chunks if c.choices and c.choices[0].logprobs
                      for x in getattr(c.choices[0].logprobs, key)] for key in ("tokens", "text_offset", "token_logprobs")}
    assert streamed["tokens"] == lp.tokens and streamed["text_offset"] == lp.text_offset  # pieces join to the plain
    assert streamed["token_logprobs"] == pytest.approx(lp.token_logprobs, abs=1e-5)
    stop = expected[len(expected) // 2:len(expected) // 2 + 2]
    cut = client.completions.create(model="tiny", prompt=prompt, max_tokens=12, temperature=0, stop=[stop])
    assert cut.choices[0].text == expected[:expected.find(stop)] and cut.choices[0].finish_reason == "stop"
    two = client.completions.create(model="tiny", prompt=[prompt, "Once upon"], max_tokens=4, n=2, temperature=0)
    assert [c.index for c in two.choices] == [0, 1, 2, 3] and two.choices[0].text == two.choices[1].text


def test_n_choices_and_the_limit(server):
    client, _ = server
    r = client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=8, n=3, seed=1)
    assert [c.index for c in r.choices] == [0, 1, 2] and len({c.message.content for c in r.choices}) > 1
    chunks = list(client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=8, n=3, seed=1, stream=True))
    streamed = {i: "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i)
                for i in range(3)}
    assert streamed == {c.index: c.message.content for c in r.choices}  # same seed, same samples
    for call in (lambda: client.chat.completions.create(model="tiny", messages=MSGS, n=5),
                 lambda: client.completions.create(model="tiny", prompt="hi", n=5)):
        with pytest.raises(openai.BadRequestError) as e:
            call()
        assert e.value.body["param"] == "n" and "at most 4" in e.value.body["message"]


def test_context_errors_name_prompt_length_limit_and_max_tokens(server):
    client, _ = server
    long = [{"role": "user", "content": "x " * 5000}]
    with pytest.raises(openai.BadRequestError) as e:  # no max_tokens: the prompt alone is too long
        client.chat.completions.create(model="tiny", messages=long)
    msg = e.value.body["message"]
    n = int(re.search(r"is (\d+) tokens long", msg).group(1))
    assert n > 4096 and "4096" in msg and "no room" in msg and not re.search(r"-\d", msg)  # was "-10917 tokens"
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=4090)
    msg = e.value.body["message"]
    assert "4096" in msg and "max_tokens is 4090" in msg and e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt=[5] * 4100)
    assert "4100" in e.value.body["message"] and e.value.body["param"] == "prompt"


def _rebuild(chunks) -> tuple[str, list[dict], str]:
    """Content, tool calls (accumulated as OpenAI's docs describe) and the finish reason."""
    content, calls, finish = "", {}, None
    for c in chunks:
        if not c.choices:
            continue
        d = c.choices[0].delta
        content += d.content or ""
        for t in d.tool_calls or []:
            call = calls.setdefault(t.index, {"id": t.id, "name": t.function.name, "arguments": ""})
            call["arguments"] += t.function.arguments or ""
        finish = c.choices[0].finish_reason or finish
    return content, [calls[k] for k in sorted(calls)], finish


def test_streamed_tool_call_rebuilds_the_plain_call(tool_server):
    kw = dict(model="tiny", messages=ASK, tools=[WEATHER], max_tokens=64, temperature=0)
    plain = tool_server.chat.completions.create(**kw)
    [call] = plain.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    chunks = list(tool_server.chat.completions.create(**kw, stream=True))
    content, calls, finish = _rebuild(chunks)
    assert content == plain.choices[0].message.content == "Let me check."
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert calls[0]["id"].startswith("call_") and finish == "tool_calls" == plain.choices[0].finish_reason
    pieces = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert len(pieces) > 2 and pieces[0].function.arguments == ""  # name first, then argument fragments
