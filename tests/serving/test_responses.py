"""Response building (tool calls via the shared parser + schema validation, stop strings), the
incremental stream of one choice fed real tokens, and request validation, on real tool-call text."""

from __future__ import annotations

import json

import pytest

from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.serving.protocol import APIError, NamedToolChoice, parse_completion_request, parse_request
from resrl_agents.serving.responses import apply_stop, build_choice
from resrl_agents.serving.stream import ChoiceStream, held_tail
from resrl_agents.tools.parsers import ToolCall, render_tool_calls
from resrl_agents.tools.registry import ToolRegistry
from resrl_agents.tools.schema import tool_from_schema

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Local time.",
                                         "parameters": {"type": "object", "properties": {}}}}


def registry() -> ToolRegistry:
    return ToolRegistry([tool_from_schema(WEATHER), tool_from_schema(TIME)])


def test_valid_tool_calls_become_openai_tool_calls():
    text = "Checking both.\n" + render_tool_calls(
        [ToolCall("get_weather", {"city": "Paris", "unit": "c"}), ToolCall("get_time", {})], "hermes")
    c = build_choice(0, text, stopped=True, completion_tokens=30, registry=registry(), tool_choice="auto")
    assert c.finish_reason == "tool_calls"
    assert c.message["content"] == "Checking both."
    names = [t["function"]["name"] for t in c.message["tool_calls"]]
    assert names == ["get_weather", "get_time"]
    assert json.loads(c.message["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris", "unit": "c"}
    assert all(t["type"] == "function" and t["id"].startswith("call_") for t in c.message["tool_calls"])
    only_call = build_choice(0, render_tool_calls([ToolCall("get_time", {})], "hermes"), stopped=True,
                             completion_tokens=9, registry=registry())
    assert only_call.message["content"] is None and only_call.finish_reason == "tool_calls"


@pytest.mark.parametrize("text", [
    render_tool_calls([ToolCall("get_weather", {"city": "Paris", "unit": "kelvin"})], "hermes"),  # enum
    render_tool_calls([ToolCall("get_weather", {})], "hermes"),  # missing required
    render_tool_calls([ToolCall("book_flight", {"to": "Oslo"})], "hermes"),  # unknown tool
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par\n</tool_call>',  # broken JSON
])
def test_invalid_calls_come_back_as_the_text_the_model_wrote(text):
    c = build_choice(0, text, stopped=True, completion_tokens=20, registry=registry(), tool_choice="auto")
    assert c.message == {"role": "assistant", "content": text} and c.finish_reason == "stop"


def test_tool_choice_none_and_named():
    text = render_tool_calls([ToolCall("get_time", {})], "hermes")
    none = build_choice(0, text, stopped=True, completion_tokens=5, registry=registry(), tool_choice="none")
    assert none.message["content"] == text and "tool_calls" not in none.message
    named = NamedToolChoice.model_validate({"type": "function", "function": {"name": "get_weather"}})
    other = build_choice(0, text, stopped=True, completion_tokens=5, registry=registry(), tool_choice=named)
    assert "tool_calls" not in other.message
    no_tools = build_choice(0, text, stopped=False, completion_tokens=5)
    assert no_tools.message["content"] == text and no_tools.finish_reason == "length"


def test_stop_strings():
    assert apply_stop("abc STOP def END", ["END", "STOP"]) == ("abc ", True)
    assert apply_stop("abc", ["x"]) == ("abc", False)
    c = build_choice(0, "The answer is 4.\nUser: more", stopped=False, completion_tokens=12, stops=["\nUser:"])
    assert c.message["content"] == "The answer is 4." and c.finish_reason == "stop"


def _feed(stream: ChoiceStream, ids: list[int], stopped: bool = True) -> list[tuple[int, dict]]:
    """Push ids one at a time; (token index, delta) for every delta, then the closing ones."""
    out = [(k, d) for k, t in enumerate(ids) for d in stream.push(t)]
    return out + [(len(ids), d) for d in stream.close(stopped)]


def test_held_tail():
    assert held_tail("abc <tool_c", ["<tool_call>"]) == 7
    assert held_tail("abc <", ["<tool_call>", "STOP"]) == 1
    assert held_tail("abc", ["<tool_call>"]) == 0
    assert held_tail("ST", ["STOP", "<x>"]) == 2


def test_stream_of_plain_text_rejoins_and_holds_back_stop_prefixes(tiny):
    tok = tiny[1]
    r = ChatRenderer(tok)
    text = "What is 37 + 45? Café ünïcode ✓ END of it"
    ids = r.encode(text)
    pieces = _feed(ChoiceStream(r.assistant_content), ids)
    assert "".join(d["content"] for _, d in pieces) == text and len(pieces) > 5
    assert all("\ufffd" not in d["content"] for _, d in pieces)  # split characters are held back
    stream = ChoiceStream(r.assistant_content, stops=["END"])
    cut = _feed(stream, ids)
    assert "".join(d["content"] for _, d in cut) == text[:text.find("END")] and stream.finish_reason == "stop"
    assert not any("E" in d["content"] for _, d in cut)  # "E" waited to see whether "END" follows
    long = ChoiceStream(r.assistant_content)
    _feed(long, ids, stopped=False)
    assert long.finish_reason == "length"


def test_streamed_tool_call_is_sent_once_closed_and_rebuilds_the_plain_call(tiny):
    tok = tiny[1]
    r = ChatRenderer(tok)
    call = render_tool_calls([ToolCall("get_weather", {"city": "Paris", "unit": "c"})], "hermes")
    text = "Checking.\n" + call
    ids = r.encode(text) + [tok.eos_token_id]
    stream = ChoiceStream(r.assistant_content, registry=registry(), tool_choice="auto")
    out = _feed(stream, ids)
    content = "".join(d.get("content") or "" for _, d in out)
    assert content == "Checking."  # the newline before the call is dropped, as in the plain message
    calls = [(k, d["tool_calls"][0]) for k, d in out if "tool_calls" in d]
    closing = len(r.encode(text[:text.rfind("</tool_call>")])) + 1  # first token that can close the tag
    assert calls[0][0] >= closing - 1  # nothing of the call went out before its block closed
    head = calls[0][1]
    assert head["index"] == 0 and head["id"].startswith("call_") and head["function"]["name"] == "get_weather"
    args = "".join(c["function"]["arguments"] for _, c in calls)
    assert len(calls) > 2 and json.loads(args) == {"city": "Paris", "unit": "c"}  # arguments in fragments
    plain = build_choice(0, r.assistant_content(ids), stopped=True, completion_tokens=len(ids), registry=registry(),
                         tool_choice="auto")
    assert json.loads(plain.message["tool_calls"][0]["function"]["arguments"]) == json.loads(args)
    assert stream.finish_reason == plain.finish_reason == "tool_calls"


def test_streamed_invalid_call_comes_back_as_text(tiny):
    r = ChatRenderer(tiny[1])
    text = "See:\n" + render_tool_calls([ToolCall("book_flight", {"to": "Oslo"})], "hermes") + "\n"  # unknown tool
    out = _feed(ChoiceStream(r.assistant_content, registry=registry(), tool_choice="auto"), r.encode(text))
    assert "".join(d["content"] for _, d in out) == text and not any("tool_calls" in d for _, d in out)


@pytest.mark.parametrize("fmt, text", [
    ("json", '[{"name": "get_time", "arguments": {}}]'),
    ("pythonic", '[get_weather(city="Oslo")]'),
])
def test_formats_without_a_marker_send_the_message_at_the_end(tiny, fmt, text):
    r = ChatRenderer(tiny[1])
    ids = r.encode(text)
    stream = ChoiceStream(r.assistant_content, registry=registry(), tool_choice="auto", fmt=fmt)
    assert all(stream.push(t) == [] for t in ids)  # it may be a call from its first character
    out = stream.close(stopped=True)
    plain = build_choice(0, text, stopped=True, completion_tokens=len(ids), registry=registry(), fmt=fmt)
    [call] = plain.message["tool_calls"]
    assert out[0]["tool_calls"][0]["function"]["name"] == call["function"]["name"]
    args = "".join(d["tool_calls"][0]["function"]["arguments"] for d in out)
    assert json.loads(args) == json.loads(call["function"]["arguments"]) and stream.finish_reason == "tool_calls"


def _body(**over) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]} | over).encode()


@pytest.mark.parametrize("body, param", [
    (b"{not json", None),
    (b"[1, 2]", None),
    (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model"),
    (_body(messages=[]), "messages"),
    (_body(messages=[{"role": "wizard", "content": "x"}]), "messages.0.role"),
    (_body(temperature=3.5), "temperature"),
    (_body(top_p=0), "top_p"),
    (_body(max_tokens=0), "max_tokens"),
    (_body(n=99), "n"),
    (_body(stop=["a", "b", "c", "d", "e"]), "stop"),
    (_body(top_logprobs=3), "top_logprobs"),  # needs logprobs: true
    (_body(logprobs=True, top_logprobs=21), "top_logprobs"),
    (_body(tools=[{"type": "function", "function": {"name": "bad name!"}}]), "tools.0"),
    (_body(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}), "tool_choice"),
    (_body(tool_choice="required"), "tool_choice"),
])
def test_request_validation_names_the_field(body, param):
    with pytest.raises(APIError) as e:
        parse_request(body, max_n=16)
    assert e.value.status == 400 and e.value.param == param
    assert set(e.value.body()["error"]) == {"message", "type", "param", "code"}


def test_request_messages_for_the_template():
    req = parse_request(_body(messages=[
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather"}, {"type": "text", "text": " in Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}], tools=[WEATHER], stop="\n"), max_n=4)
    msgs = req.template_messages()
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[1]["content"] == "Weather in Paris?"
    assert msgs[2]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert msgs[3] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
    assert req.stops() == ["\n"]
    image = parse_request(_body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), max_n=4)
    with pytest.raises(APIError):
        image.template_messages()


@pytest.mark.parametrize("over, param", [
    ({"echo": True}, "echo"),
    ({"prompt": ""}, "prompt"),
    ({"n": 5}, "n"),
    ({"logprobs": 6}, "logprobs"),
    ({"prompt": {"text": "x"}}, "prompt"),
])
def test_completion_request_validation_names_the_field(over, param):
    body = json.dumps({"model": "m", "prompt": "Hello"} | over).encode()
    with pytest.raises(APIError) as e:
        parse_completion_request(body, max_n=4)
    assert e.value.status == 400 and (e.value.param or "").split(".")[0] == param


def test_completion_request_prompt_forms():
    def prompts(p):
        return parse_completion_request(json.dumps({"model": "m", "prompt": p}).encode(), max_n=4).prompts()

    assert prompts("hi") == ["hi"] and prompts([1, 2]) == [[1, 2]]
    assert prompts(["a", "b"]) == ["a", "b"] and prompts([[1], [2, 3]]) == [[1], [2, 3]]
