"""Parsers (and renderers) of the tool calls a model writes. One module for training, eval and
serving, so all three read a model's output the same way.

Formats:

* ``hermes`` (Hermes / Qwen2.5 / Qwen3 chat templates, ToolRL):
  ``<tool_call>\\n{"name": "f", "arguments": {...}}\\n</tool_call>``, any number of blocks. A
  block may hold several JSON objects (one per line, as ToolRL writes them) or a JSON list;
  ``"parameters"`` is read as an alias of ``"arguments"``, and arguments given as a JSON *string*
  (OpenAI's wire format) are decoded.
* ``json``: a JSON list of ``{"name", "arguments"}`` objects, or a single object (a Markdown
  fence around the whole text is dropped; text after the JSON becomes ``content``).
* ``llama3_json`` (Llama-3.1/3.2/3.3 templates): the message is one JSON object
  ``{"name": "f", "parameters": {...}}`` (``"arguments"`` read as an alias), optionally after
  ``<|python_tag|>``; several objects may be separated by ``;``. Text after them is ``content``.
* ``mistral`` (Mistral v3 templates): ``[TOOL_CALLS] [{"name": "f", "arguments": {...}, "id":
  "abcdef123"}]``; text before the marker is ``content``.
* ``pythonic`` (BFCL): ``[f(a=1), math.factorial(n=5)]``, brackets optional. Parsed with ``ast``
  only; argument values go through a whitelist walker over literal nodes (strings, numbers,
  booleans, None, lists, tuples, dicts; JSON's ``true/false/null`` too). Nothing is evaluated.
* ``auto``: tries ``json`` if the text starts with ``[`` or ``{``, ``pythonic`` if it starts like
  a call (``f(`` or ``[f(``), ``hermes`` if a ``<tool_call>`` tag occurs, ``llama3_json`` if it
  starts with ``{`` or ``<|python_tag|>``, ``mistral`` if ``[TOOL_CALLS]`` occurs; keeps the first
  error-free result with the most calls (else the one with most calls). No candidate: no calls.

Parsing never raises on model output: malformed text yields ``errors`` (numbered by call,
"tool call 2: invalid JSON at line 1 col 14: ...") and whatever calls could still be read. An
unclosed ``<tool_call>`` whose JSON is complete (generation stopped at the closing tag) still
yields its call, plus an ``unclosed <tool_call>`` error, so format rewards can tell. At most
``MAX_ERRORS`` errors are listed (then "and N more"), and parsing stays linear in the text length
even for megabytes of broken blocks.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal

Format = Literal["hermes", "json", "llama3_json", "mistral", "pythonic", "auto"]
OPEN, CLOSE = "<tool_call>", "</tool_call>"
PYTHON_TAG, TOOL_CALLS = "<|python_tag|>", "[TOOL_CALLS]"
_DECODER = json.JSONDecoder()
_FENCE = re.compile(r"^```[\w-]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)
_LOOKS_PYTHONIC = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\s*\(")
_IDENT = re.compile(r"^[A-Za-z_]\w*$")
_SEPARATORS = " \t\r\n,"
MAX_ERRORS = 20  # errors reported per message; the rest are counted


@dataclass(frozen=True)
class ToolCall:
    """One call: the tool's name, its JSON arguments, and the call id when the format has one."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class ParseResult:
    """Calls read from one message, the text outside them (stripped), and format errors."""

    calls: list[ToolCall]
    content: str
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_tool_calls(text: str, fmt: Format = "auto") -> ParseResult:
    """Read the tool calls in ``text`` written in ``fmt``. Never raises on malformed text."""
    if fmt not in _PARSERS:
        raise ValueError(f"unknown tool-call format {fmt!r}; expected one of {sorted(_PARSERS)}")
    if not isinstance(text, str):
        return ParseResult([], "", [f"expected text, got {type(text).__name__}"])
    try:
        res = _PARSERS[fmt](text)
    except RecursionError:
        return ParseResult([], text.strip(), ["tool call output is nested too deeply to parse"])
    if len(res.errors) > MAX_ERRORS:  # keep the message an agent reads short
        more = len(res.errors) - MAX_ERRORS
        return ParseResult(res.calls, res.content, [*res.errors[:MAX_ERRORS], f"and {more} more"])
    return res


# --------------------------------------------------------------------------- call objects


def _call_from_obj(obj: Any, n: int) -> ToolCall | str:
    """A JSON value -> ToolCall, or an error message for tool call number ``n``."""
    if not isinstance(obj, dict):
        return f"tool call {n}: expected a JSON object, got {_json_kind(obj)}"
    fn = obj.get("function")
    body = fn if isinstance(fn, dict) and "name" in fn else obj  # OpenAI {"function": {...}}
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return f"tool call {n}: missing or empty \"name\""
    args = body.get("arguments", body.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError as e:
            return f"tool call {n} ({name}): arguments string is not valid JSON: {_json_msg(e)}"
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return f"tool call {n} ({name}): arguments must be a JSON object, got {_json_kind(args)}"
    call_id = obj.get("id")
    return ToolCall(name.strip(), args, call_id if isinstance(call_id, str) else None)


def _json_kind(x: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(x), "number")


def _json_msg(e: ValueError) -> str:
    return e.msg if isinstance(e, json.JSONDecodeError) else str(e)


def _where(text: str, start: int, pos: int) -> str:
    """Line/column of ``pos`` counted from ``start`` (the start of the JSON value), 1-based."""
    line = text.count("\n", start, pos) + 1
    last_nl = text.rfind("\n", start, pos)
    col = pos - (last_nl + 1 if last_nl >= 0 else start) + 1
    return f"line {line} col {col}"


class _Collector:
    """Calls and errors of one message, numbering call candidates 1, 2, ... in order."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self.errors: list[str] = []
        self.n = 0

    def add(self, made: ToolCall | str) -> None:
        (self.calls if isinstance(made, ToolCall) else self.errors).append(made)

    def add_json(self, value: Any) -> None:
        items = value if isinstance(value, list) else [value]
        if isinstance(value, dict) and "name" not in value and isinstance(value.get("tool_calls"), list):
            items = value["tool_calls"]  # an OpenAI assistant message
        for item in items:
            self.n += 1
            self.add(_call_from_obj(item, self.n))

    def decode(self, text: str, k: int) -> tuple[Any, int] | None:
        """One JSON value at ``k``; None (and an error) if it is malformed."""
        try:
            return _DECODER.raw_decode(text, k)
        except json.JSONDecodeError as e:
            self.errors.append(f"tool call {self.n + 1}: invalid JSON at {_where(text, k, e.pos)}: "
                               f"{e.msg}")
        except ValueError as e:  # e.g. an integer beyond the int-to-str digit limit
            self.errors.append(f"tool call {self.n + 1}: invalid JSON: {e}")
        self.n += 1
        return None


# --------------------------------------------------------------------------- hermes


class _Tags:
    """Positions of the next ``<tool_call>``/``</tool_call>`` tag, found by one forward scan so
    a message with thousands of broken blocks still parses in linear time."""

    _TAG = re.compile(re.escape(OPEN) + "|" + re.escape(CLOSE))

    def __init__(self, text: str) -> None:
        self.text = text
        self._from: int | None = None  # start of the last search and its answer, reused while
        self._hit: re.Match[str] | None = None  # no tag can lie between a new start and it

    def next(self, k: int) -> tuple[int, str | None]:
        hit = self._hit
        if self._from is None or not (self._from <= k and (hit is None or hit.start() >= k)):
            hit = self._TAG.search(self.text, k)
            self._from, self._hit = k, hit
        return (hit.start(), hit.group()) if hit else (-1, None)


def _parse_hermes(text: str) -> ParseResult:
    out, tags = _Collector(), _Tags(text)
    content: list[str] = []
    pos = 0
    while True:
        i, tag = tags.next(pos)
        content.append(text[pos:] if i < 0 else text[pos:i])
        if tag is None:
            return ParseResult(out.calls, "".join(content).strip(), out.errors)
        if tag == CLOSE:
            out.errors.append(f"unexpected {CLOSE} without an opening {OPEN}")
            pos = i + len(CLOSE)
        else:
            pos = _hermes_block(text, i + len(OPEN), out, tags)


def _hermes_block(text: str, k: int, out: _Collector, tags: _Tags) -> int:
    """Read the JSON values of the block whose body starts at ``k``; return where it ends.

    The body is decoded up to the next tag. When the JSON breaks off inside a string, that tag
    may belong to an argument (``"text": "</tool_call>"``): retry up to the following tags.
    """
    first_end, first_tag = tags.next(k)
    end, tag = first_end, first_tag
    first: tuple[list[Any], str | None, bool] | None = None
    for _ in range(_TAGS_IN_STRINGS + 1):
        values, error, in_string = _decode_values(text[k:len(text) if end < 0 else end])
        first = first or (values, error, in_string)
        if error is None or not in_string or end < 0:
            break
        end, tag = tags.next(end + 1)
    if error is not None:  # report the first window's reading: the block ends at its first tag
        values, error, _ = first
        end, tag = first_end, first_tag
    for value in values:
        out.add_json(value)
    if error is not None or not values:
        out.n += 1
        out.errors.append(f"tool call {out.n}: {error or f'empty {OPEN} block'}")
    if tag == CLOSE:
        return end + len(CLOSE)
    out.errors.append(f"unclosed {OPEN}")
    return len(text) if end < 0 else end


_TAGS_IN_STRINGS = 8  # tags inside one call's string arguments that a block may span


def _decode_values(body: str) -> tuple[list[Any], str | None, bool]:
    """JSON values separated by whitespace/commas -> (values, error, error is inside a string)."""
    values: list[Any] = []
    j = 0
    while True:
        while j < len(body) and body[j] in _SEPARATORS:
            j += 1
        if j >= len(body):
            return values, None, False
        try:
            value, j2 = _DECODER.raw_decode(body, j)
        except json.JSONDecodeError as e:
            unterminated = e.msg.startswith("Unterminated string")
            return values, f"invalid JSON at {_where(body, j, e.pos)}: {e.msg}", unterminated
        except ValueError as e:  # e.g. an integer beyond the int-to-str digit limit
            return values, f"invalid JSON: {e}", False
        values.append(value)
        j = j2


# --------------------------------------------------------------------------- json


def _unfence(text: str) -> str:
    """Strip surrounding whitespace and one Markdown code fence wrapping the whole text."""
    s = text.strip()
    m = _FENCE.match(s)
    return m.group(1).strip() if m else s


def _parse_json(text: str) -> ParseResult:
    s = _unfence(text)
    out = _Collector()
    k = _json_values(s, out, _SEPARATORS)
    return ParseResult(out.calls, s[k:].strip(), out.errors)


def _json_values(s: str, out: _Collector, separators: str) -> int:
    """Decode the JSON values at the start of ``s`` (separated by ``separators``) into ``out``;
    return where they end."""
    k = 0
    while k < len(s) and s[k] in "[{":
        decoded = out.decode(s, k)
        if decoded is None:
            break
        value, k = decoded
        out.add_json(value)
        while k < len(s) and s[k] in separators:
            k += 1
    return k


def _parse_llama3_json(text: str) -> ParseResult:
    s = _unfence(text).removeprefix(PYTHON_TAG).lstrip()
    out = _Collector()
    k = _json_values(s, out, _SEPARATORS + ";")
    return ParseResult(out.calls, s[k:].strip(), out.errors)


def _parse_mistral(text: str) -> ParseResult:
    head, marker, body = text.partition(TOOL_CALLS)
    if not marker:
        return ParseResult([], text.strip(), [])
    out = _Collector()
    body = body.lstrip()
    k = _json_values(body, out, _SEPARATORS)
    if k == 0 and not out.errors:
        out.errors.append(f"tool call 1: expected a JSON list after {TOOL_CALLS}")
    return ParseResult(out.calls, (head + body[k:]).strip(), out.errors)


# --------------------------------------------------------------------------- pythonic


def _parse_pythonic(text: str) -> ParseResult:
    s = _unfence(text)
    if not _LOOKS_PYTHONIC.match(s):
        empty = s.startswith("[") and s[1:].strip() == "]"
        return ParseResult([], "" if empty else s, [])
    out = _Collector()
    try:
        nodes = _call_nodes(s)
    except (SyntaxError, ValueError, MemoryError) as e:
        where = f" at line {e.lineno} col {e.offset}" if isinstance(e, SyntaxError) else ""
        msg = e.msg if isinstance(e, SyntaxError) else str(e)
        return ParseResult([], s, [f"invalid Python call syntax{where}: {msg}"])
    for node in nodes:
        out.n += 1
        out.add(_call_from_node(node, out.n))
    return ParseResult(out.calls, "", out.errors)


def _call_nodes(s: str) -> list[ast.AST]:
    """``[f(), g()]``, ``f(), g()`` or ``f()`` -> the element nodes; one call per line too."""
    with warnings.catch_warnings():  # e.g. "invalid escape sequence" in a model's string
        warnings.simplefilter("ignore")
        try:
            body = ast.parse(s, mode="eval").body
        except SyntaxError:
            stmts = ast.parse(s, mode="exec").body  # calls on separate lines
            return [st.value if isinstance(st, ast.Expr) else st for st in stmts]
    return list(body.elts) if isinstance(body, (ast.List, ast.Tuple)) else [body]


def _call_from_node(node: ast.AST, n: int) -> ToolCall | str:
    if not isinstance(node, ast.Call):
        return f"tool call {n}: expected a call like f(a=1), got {type(node).__name__}"
    name = _dotted(node.func)
    if name is None:
        return f"tool call {n}: the called object must be a (dotted) name"
    if node.args:
        return f"tool call {n} ({name}): positional arguments are not supported; use name=value"
    args: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            return f"tool call {n} ({name}): **kwargs are not supported"
        try:
            args[kw.arg] = _literal(kw.value)
        except ValueError as e:
            return f"tool call {n} ({name}): argument {kw.arg!r}: {e}"
    return ToolCall(name, args)


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


_NAMED_LITERALS = {"true": True, "false": False, "null": None}


def _literal(node: ast.AST) -> Any:
    """A JSON value from a literal node: the safe subset ``ast.literal_eval`` accepts, without
    sets/bytes/complex (not JSON), plus JSON's ``true``/``false``/``null``. Never evaluates."""
    if isinstance(node, ast.Constant):
        if node.value is None or isinstance(node.value, (str, bool, int, float)):
            return node.value
        raise ValueError(f"{type(node.value).__name__} values are not JSON")
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(x) for x in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for key, value in zip(node.keys, node.values):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise ValueError("dict keys must be string literals")
            out[key.value] = _literal(value)
        return out
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) in (int, float)):
        v = node.operand.value
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Name) and node.id in _NAMED_LITERALS:
        return _NAMED_LITERALS[node.id]
    raise ValueError(f"{type(node).__name__} is not a literal (use strings, numbers, booleans, "
                     "None, lists and dicts)")


# --------------------------------------------------------------------------- auto


def _parse_auto(text: str) -> ParseResult:
    """Try each format the text could be in; keep the error-free result with most calls."""
    s = _unfence(text)
    candidates = []
    if s[:1] in ("[", "{"):
        candidates.append(_parse_json(text))
    if _LOOKS_PYTHONIC.match(s):
        candidates.append(_parse_pythonic(text))
    if OPEN in text or CLOSE in text:  # may also sit inside a JSON/pythonic string argument
        candidates.append(_parse_hermes(text))
    if s.startswith(PYTHON_TAG) or s[:1] == "{":
        candidates.append(_parse_llama3_json(text))
    if TOOL_CALLS in text:
        candidates.append(_parse_mistral(text))
    if not candidates:
        return ParseResult([], text.strip(), [])
    return min(candidates, key=lambda r: (bool(r.errors), -len(r.calls)))


_PARSERS: dict[str, Callable[[str], ParseResult]] = {
    "hermes": _parse_hermes,
    "json": _parse_json,
    "llama3_json": _parse_llama3_json,
    "mistral": _parse_mistral,
    "pythonic": _parse_pythonic,
    "auto": _parse_auto,
}


# --------------------------------------------------------------------------- rendering


def render_tool_calls(calls: Iterable[ToolCall], fmt: Format) -> str:
    """Text a model should write for ``calls``; ``parse_tool_calls(render(x), fmt)`` gives back
    ``x``. ``hermes`` is byte-identical to the Qwen2.5 chat template's tool-call rendering (plus
    an ``"id"`` key when a call has one); ``pythonic`` and ``llama3_json`` cannot carry ids.
    """
    calls = list(calls)
    if fmt == "hermes":
        return "\n".join(f"{OPEN}\n{json.dumps(_call_obj(c), ensure_ascii=False)}\n{CLOSE}"
                         for c in calls)
    if fmt == "json":
        return json.dumps([_call_obj(c) for c in calls], ensure_ascii=False)
    if fmt == "llama3_json":
        return "; ".join(json.dumps({"name": c.name, "parameters": c.arguments}, ensure_ascii=False) for c in calls)
    if fmt == "mistral":
        return f"{TOOL_CALLS} " + json.dumps([_call_obj(c) for c in calls], ensure_ascii=False)
    if fmt == "pythonic":
        return "[" + ", ".join(_render_pythonic(c) for c in calls) + "]"
    raise ValueError(f"cannot render tool calls as {fmt!r}; use hermes, json, llama3_json, mistral or pythonic")


def _call_obj(c: ToolCall) -> dict[str, Any]:
    obj: dict[str, Any] = {"name": c.name, "arguments": c.arguments}
    if c.id is not None:
        obj["id"] = c.id
    return obj


def _render_pythonic(c: ToolCall) -> str:
    parts = c.name.split(".")
    if not all(_IDENT.match(p) and not keyword.iskeyword(p) for p in parts):
        raise ValueError(f"{c.name!r} is not a (dotted) Python identifier")
    args = []
    for k, v in c.arguments.items():
        if not _IDENT.match(k) or keyword.iskeyword(k):
            raise ValueError(f"argument name {k!r} of {c.name} is not a Python identifier")
        args.append(f"{k}={_py_literal(v)}")
    return f"{c.name}({', '.join(args)})"


def _py_literal(v: Any) -> str:
    if isinstance(v, float) and (v != v or abs(v) == float("inf")):
        raise ValueError(f"{v!r} has no Python literal")
    if isinstance(v, dict):
        return "{" + ", ".join(f"{str(k)!r}: {_py_literal(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_py_literal(x) for x in v) + "]"
    if v is None or isinstance(v, (str, bool, int, float)):
        return repr(v)
    raise ValueError(f"{type(v).__name__} is not a JSON value")
