"""Tool-call parsers: every format on hand-written cases, error messages, and Hypothesis
round-trips render -> parse for generated names and arguments."""

from __future__ import annotations

import keyword
from pathlib import Path
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resrl_agents.tools import ParseResult, ToolCall, parse_tool_calls, render_tool_calls

# --------------------------------------------------------------------------- hermes


def test_hermes_several_calls_whitespace_and_content() -> None:
    text = ('<think>need two lookups</think>\n'
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
            '<tool_call>  {"name":"get_time",\n "arguments": "{\\"tz\\": \\"CET\\"}"}'
            '</tool_call>')
    assert parse_tool_calls(text, "hermes") == ParseResult(
        [ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"tz": "CET"})],
        "<think>need two lookups</think>", [])


def test_hermes_toolrl_lines_lists_aliases_and_openai_shape() -> None:
    text = ('<tool_call>\n{"name": "a", "parameters": {"x": 1}}\n{"name": "b"}\n</tool_call>'
            '<tool_call>[{"name": "c", "arguments": {}}, '
            '{"id": "call_1", "type": "function", "function": {"name": "d", "arguments": "{}"}}]'
            '</tool_call>')
    res = parse_tool_calls(text, "hermes")
    assert res.calls == [ToolCall("a", {"x": 1}), ToolCall("b", {}), ToolCall("c", {}),
                         ToolCall("d", {}, "call_1")]
    assert res.ok and res.content == ""


def test_hermes_tags_inside_argument_strings_do_not_split_the_call() -> None:
    call = ToolCall("echo", {"text": "a </tool_call> b <tool_call> c"})
    assert parse_tool_calls(render_tool_calls([call], "hermes"), "hermes").calls == [call]


@pytest.mark.parametrize("text, calls, errors", [
    ('<tool_call>{"name": "f", "arguments": {"a": 1,}}</tool_call>', [],
     ["tool call 1: invalid JSON at line 1 col 36: Expecting property name enclosed in double "
      "quotes"]),
    ('<tool_call>{"name": "f"}</tool_call><tool_call>\n{"name": "g",\n "arguments": {"a" 1}}'
     '</tool_call>', [ToolCall("f", {})],
     ["tool call 2: invalid JSON at line 2 col 20: Expecting ':' delimiter"]),
    ('<tool_call>\n{"name": "f", "arguments": {}}', [ToolCall("f", {})], ["unclosed <tool_call>"]),
    ('<tool_call>{"name": "f", "argu', [],
     ["tool call 1: invalid JSON at line 1 col 15: Unterminated string starting at",
      "unclosed <tool_call>"]),
    ('<tool_call>{"arguments": {}}</tool_call>', [], ['tool call 1: missing or empty "name"']),
    ('<tool_call>{"name": "f", "arguments": [1]}</tool_call>', [],
     ["tool call 1 (f): arguments must be a JSON object, got array"]),
    ('<tool_call>{"name": "f", "arguments": "{oops"}</tool_call>', [],
     ["tool call 1 (f): arguments string is not valid JSON: Expecting property name enclosed in "
      "double quotes"]),
    ('<tool_call>"f"</tool_call>', [], ["tool call 1: expected a JSON object, got string"]),
    ('done</tool_call>', [], ["unexpected </tool_call> without an opening <tool_call>"]),
    ('<tool_call>{"name": "f"}<tool_call>{"name": "g"}</tool_call>',
     [ToolCall("f", {}), ToolCall("g", {})], ["unclosed <tool_call>"]),
])
def test_hermes_errors(text: str, calls: list[ToolCall], errors: list[str]) -> None:
    res = parse_tool_calls(text, "hermes")
    assert res.calls == calls and res.errors == errors


def test_plain_text_is_content_without_errors() -> None:
    for fmt in ("hermes", "json", "pythonic", "auto"):
        assert parse_tool_calls("  The answer is 42.\n", fmt) == ParseResult(
            [], "The answer is 42.", [])


# --------------------------------------------------------------------------- json


def test_json_list_single_object_fence_and_trailing_text() -> None:
    assert parse_tool_calls('[{"name": "f", "arguments": {"a": [1, 2]}}, {"name": "g"}]',
                            "json").calls == [ToolCall("f", {"a": [1, 2]}), ToolCall("g", {})]
    assert parse_tool_calls('```json\n{"name": "f", "arguments": {}, "id": "x"}\n```',
                            "json") == ParseResult([ToolCall("f", {}, "x")], "", [])
    res = parse_tool_calls('{"name": "f"} and some words', "json")
    assert res == ParseResult([ToolCall("f", {})], "and some words", [])
    assert parse_tool_calls("[]", "json") == ParseResult([], "", [])
    bad = parse_tool_calls('[{"name": "f", "arguments": {"a": 1}]', "json")
    assert bad.calls == [] and bad.errors == [
        "tool call 1: invalid JSON at line 1 col 37: Expecting ',' delimiter"]
    assert parse_tool_calls("[1, {}]", "json").errors == [
        "tool call 1: expected a JSON object, got number", 'tool call 2: missing or empty "name"']


# --------------------------------------------------------------------------- pythonic


def test_llama3_json_calls() -> None:
    """Llama-3.1's custom-tool calls: one JSON object with "parameters", maybe after <|python_tag|>,
    several separated by ";"."""
    one = parse_tool_calls('{"name": "get_weather", "parameters": {"city": "Paris"}}', "llama3_json")
    assert one == ParseResult([ToolCall("get_weather", {"city": "Paris"})], "", [])
    two = parse_tool_calls('<|python_tag|>{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"x": 1}} ok',
                           "llama3_json")
    assert two == ParseResult([ToolCall("a", {}), ToolCall("b", {"x": 1})], "ok", [])
    assert parse_tool_calls("The weather is fine.", "llama3_json") == ParseResult([], "The weather is fine.", [])
    bad = parse_tool_calls('{"name": "a", "parameters": {"x": }', "llama3_json")
    assert not bad.calls and bad.errors[0].startswith("tool call 1: invalid JSON at line 1 col 35: Expecting value")


def test_mistral_calls() -> None:
    """Mistral v3: [TOOL_CALLS] then a JSON list of {"name", "arguments", "id"}."""
    text = 'Let me check. [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcdef123"}]'
    assert parse_tool_calls(text, "mistral") == ParseResult(
        [ToolCall("get_weather", {"city": "Paris"}, "abcdef123")], "Let me check.", [])
    assert parse_tool_calls("no calls", "mistral") == ParseResult([], "no calls", [])
    assert parse_tool_calls("[TOOL_CALLS] get_weather", "mistral").errors == [
        "tool call 1: expected a JSON list after [TOOL_CALLS]"]
    assert parse_tool_calls(text, "auto").calls == parse_tool_calls(text, "mistral").calls


def test_pythonic_forms() -> None:
    expected = [ToolCall("f", {"a": 1, "b": "x"}), ToolCall("math.factorial", {"n": 5})]
    for text in ('[f(a=1, b="x"), math.factorial(n=5)]', "f(a=1, b='x'), math.factorial(n=5)",
                 "f(a=1, b='x')\nmath.factorial(n=5)", "```python\n[f(a=1, b='x'), "
                 "math.factorial(n=5)]\n```"):
        assert parse_tool_calls(text, "pythonic") == ParseResult(expected, "", [])
    values = parse_tool_calls("g(x=-1.5, y=[1, (2, 3)], z={'k': None}, t=true, u=null, v=+2)",
                              "pythonic").calls[0].arguments
    assert values == {"x": -1.5, "y": [1, [2, 3]], "z": {"k": None}, "t": True, "u": None, "v": 2}
    assert parse_tool_calls("[]", "pythonic") == ParseResult([], "", [])


@pytest.mark.parametrize("text, error", [
    ("[f(a=1), g(b=2]", "invalid Python call syntax at line 1 col 15: closing parenthesis ']' "
                        "does not match opening parenthesis '('"),
    ("f(1)", "tool call 1 (f): positional arguments are not supported; use name=value"),
    ("f(a=__import__('os').system('rm -rf /'))",
     "tool call 1 (f): argument 'a': Call is not a literal (use strings, numbers, booleans, "
     "None, lists and dicts)"),
    ("f(a=x)", "tool call 1 (f): argument 'a': Name is not a literal (use strings, numbers, "
               "booleans, None, lists and dicts)"),
    ("f(a={1, 2})", "tool call 1 (f): argument 'a': Set is not a literal (use strings, numbers, "
                    "booleans, None, lists and dicts)"),
    ("f(a=b'x')", "tool call 1 (f): argument 'a': bytes values are not JSON"),
    ("f(**kw)", "tool call 1 (f): **kwargs are not supported"),
    ("[f(a=1), 3]", "tool call 2: expected a call like f(a=1), got Constant"),
    ("f(a=1)(b=2)", "tool call 1: the called object must be a (dotted) name"),
])
def test_pythonic_errors_never_evaluate(text: str, error: str) -> None:
    res = parse_tool_calls(text, "pythonic")
    assert error in res.errors


# --------------------------------------------------------------------------- auto


@pytest.mark.parametrize("text, name", [
    ('<tool_call>{"name": "h", "arguments": {}}</tool_call>', "h"),
    ("[p(a=1)]", "p"),
    ('[{"name": "j", "arguments": {}}]', "j"),
    ('{"name": "j", "arguments": {}}', "j"),
])
def test_auto_detects_format(text: str, name: str) -> None:
    assert [c.name for c in parse_tool_calls(text, "auto").calls] == [name]


def test_render_rejects_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="not a Python identifier"):
        render_tool_calls([ToolCall("f", {"class": 1})], "pythonic")
    with pytest.raises(ValueError, match="no Python literal"):
        render_tool_calls([ToolCall("f", {"a": float("inf")})], "pythonic")
    with pytest.raises(ValueError, match="cannot render"):
        render_tool_calls([], "auto")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown tool-call format"):
        parse_tool_calls("", "xml")  # type: ignore[arg-type]


def test_hermes_render_matches_qwen_template() -> None:
    # Qwen2.5's template: '<tool_call>\n{"name": "' + name + '", "arguments": ' + args|tojson
    # + '}\n</tool_call>' with tojson = json.dumps(ensure_ascii=False)
    assert render_tool_calls([ToolCall("f", {"city": "Zürich"}), ToolCall("g", {})], "hermes") == (
        '<tool_call>\n{"name": "f", "arguments": {"city": "Zürich"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>')


def test_hermes_render_is_the_project_chat_template_span() -> None:
    """Invariant 5 (one parser, one template): the assistant span the chat template renders for
    tool calls is exactly ``render_tool_calls(..., "hermes")`` and parses back to the calls."""
    template = Path(__file__).resolve().parents[2] / "resrl_agents/models/chat_template.jinja"
    if not template.exists():
        pytest.skip("chat template not present")
    utils = pytest.importorskip("transformers.utils.chat_template_utils")
    calls = [ToolCall("get_weather", {"city": "Zürich", "unit": "celsius"}),
             ToolCall("get_time", {"tz": 'a"b</tool_call>'})]
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in calls]}]
    out = utils._compile_jinja_template(template.read_text()).render(
        messages=messages, tools=[], add_generation_prompt=False)
    span = out.split("<|im_start|>assistant\n")[-1].split("<|im_end|>")[0]
    assert span == render_tool_calls(calls, "hermes")
    assert parse_tool_calls(span, "hermes") == ParseResult(calls, "", [])


# --------------------------------------------------------------------------- round-trips

_IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s))
_JSON_NAME = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}", fullmatch=True)
_SCALARS = (st.none() | st.booleans() | st.integers(-10**30, 10**30)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
JSON_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)


def calls_for(fmt: str) -> st.SearchStrategy[list[ToolCall]]:
    """Calls every renderer of ``fmt`` can write: pythonic needs identifiers and has no ids."""
    if fmt == "llama3_json":
        name, args, ids = _JSON_NAME, st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4), st.none()
    elif fmt == "pythonic":
        name = st.lists(_IDENT, min_size=1, max_size=3).map(".".join)
        args = st.dictionaries(_IDENT, JSON_VALUES, max_size=4)
        ids = st.none()
    else:
        name, args = _JSON_NAME, st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4)
        ids = st.none() | st.text(max_size=10)
    return st.lists(st.builds(ToolCall, name, args, ids), max_size=4)


def _same(a: list[ToolCall], b: list[ToolCall]) -> bool:
    """Equal including value types (True vs 1, 1 vs 1.0) and key order."""
    return repr(a) == repr(b)


@pytest.mark.parametrize("fmt", ["hermes", "json", "llama3_json", "mistral", "pythonic"])
def test_round_trip(fmt: str) -> None:
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(calls_for(fmt))
    def check(calls: list[ToolCall]) -> None:
        text = render_tool_calls(calls, fmt)
        res = parse_tool_calls(text, fmt)
        assert res.errors == [] and res.content == ""
        assert _same(res.calls, calls)
        if calls:  # auto must find the same calls without being told the format
            assert _same(parse_tool_calls(text, "auto").calls, calls)

    check()


@settings(max_examples=200, deadline=None)
@given(calls_for("hermes"), st.text(max_size=30).filter(lambda s: "<tool_call>" not in s
                                                         and "</tool_call>" not in s))
def test_hermes_round_trip_keeps_surrounding_text(calls: list[ToolCall], prefix: str) -> None:
    res = parse_tool_calls(f"{prefix}\n{render_tool_calls(calls, 'hermes')}", "hermes")
    assert _same(res.calls, calls) and res.content == prefix.strip() and res.ok
