"""OpenAI-compatible HTTP server (FastAPI) over a rollout ``Policy``.

Endpoints: ``GET /health`` (no key needed), ``GET /v1/models``, ``POST /v1/chat/completions``
(messages, tools, tool_choice, temperature, top_p, max_tokens / max_completion_tokens, n, stop,
seed, logprobs / top_logprobs, stream with ``stream_options.include_usage``) and
``POST /v1/completions`` (prompt text or token ids, or a list of prompts; max_tokens, n, stop,
seed, logprobs as an int, stream; echo off). Chat prompts are rendered with the model's chat
template through ``ChatRenderer`` (the training renderer, tools included); tool calls are read by
the shared parser (``serving/responses.py``).

Streaming is real: the batcher hands every decoding step's tokens to the request while the batch
is still decoding, and ``serving/stream.py`` turns them into SSE chunks (tool calls as OpenAI
tool-call deltas). Log-probs are the model's raw next-token log-probs (before temperature / top-p).

Limits and errors, all with OpenAI's error body: a configured API key is required as
``Authorization: Bearer <key>`` (401); bodies above ``max_body_bytes`` get 413 before they are
parsed; invalid JSON or fields get 400 naming the field (``n`` above ``serve.max_n`` too); a
prompt that leaves no room, or prompt + max_tokens beyond the context, get 400
``context_length_exceeded`` naming the three numbers; an unknown model 404; a full queue 503.
"""

from __future__ import annotations

import asyncio
import hmac
import socket
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from resrl_agents.config.eval_schema import ServeAppConfig, ServeConfig
from resrl_agents.rollout.chat import ChatRenderer, resolve_tool_format
from resrl_agents.serving.batcher import Batcher, Overloaded, Sample, SteppingPolicy
from resrl_agents.serving.protocol import (APIError, ChatRequest, CompletionRequest, NamedToolChoice,
                                           parse_completion_request, parse_request)
from resrl_agents.serving.responses import (TokenTexts, apply_stop, build_choice, completion_body,
                                            reported_tokens, sse, usage)
from resrl_agents.serving.stream import ChoiceStream
from resrl_agents.tools.registry import ToolRegistry
from resrl_agents.tools.schema import tool_from_schema


@dataclass
class Served:
    """What every request needs: the model's name and context, the batcher, the tokenizer's
    renderer and token texts, the EOS ids and the serve config."""

    name: str
    context_len: int
    batcher: Batcher
    tokenizer: Any
    renderer: ChatRenderer
    texts: TokenTexts
    eos_ids: tuple[int, ...]
    cfg: ServeConfig


def create_app(policy: SteppingPolicy, tokenizer: Any, *, name: str, cfg: ServeConfig, context_len: int) -> FastAPI:
    """The app serving ``policy`` as model ``name``. The batcher thread starts now and stops with
    the app's lifespan."""
    if cfg.tool_format is None:
        cfg = replace(cfg, tool_format=ChatRenderer(tokenizer).tool_format())
    batcher = Batcher(policy, max_batch_size=cfg.max_batch_size, max_wait_s=cfg.max_wait_ms / 1000,
                      max_pending=cfg.max_pending)
    srv = Served(name, context_len, batcher, tokenizer, ChatRenderer(tokenizer), TokenTexts(tokenizer),
                 tuple(policy.eos_ids), cfg)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        batcher.close()

    app = FastAPI(title="resrl-agents", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher = batcher

    @app.exception_handler(APIError)
    async def _api_error(_request: Request, e: APIError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(APIError(e.status_code, str(e.detail)).body(), status_code=e.status_code)

    def check_key(request: Request) -> None:
        if cfg.api_key is None:
            return
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), cfg.api_key.encode()):
            raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")

    def check_model(model: str) -> None:
        if model != name:
            raise APIError(404, f"The model {model!r} does not exist (this server has {name!r})",
                           param="model", code="model_not_found")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        s = batcher.stats
        return {"status": "ok", "model": name, "batches": s.batches, "requests": s.requests,
                "max_batch_rows": s.max_batch_rows}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_key(request)
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "resrl-agents"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        check_key(request)
        req = parse_request(await read_body(request, cfg.max_body_bytes), max_n=cfg.max_n)
        check_model(req.model)
        return await chat(req, srv)

    @app.post("/v1/completions")
    async def completions(request: Request):
        check_key(request)
        req = parse_completion_request(await read_body(request, cfg.max_body_bytes), max_n=cfg.max_n)
        check_model(req.model)
        return await complete_text(req, srv)

    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it (or its declared length) exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body is {declared} bytes; the limit is {limit}", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body exceeds the limit of {limit} bytes", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _registry(req: ChatRequest) -> tuple[ToolRegistry | None, list[dict] | None]:
    """Validator of the request's tools, and the tools shown to the model (only the named one
    when ``tool_choice`` names a function)."""
    if not req.tools:
        return None, None
    try:
        registry = ToolRegistry([tool_from_schema(t) for t in req.tools])
    except ValueError as e:
        raise APIError(400, str(e), param="tools") from None
    if isinstance(req.tool_choice, NamedToolChoice):
        return registry, [registry[req.tool_choice.function.name].schema]
    return registry, req.tools


def budget(prompt_len: int, requested: int | None, srv: Served, where: str) -> int:
    """Tokens to generate: ``requested`` (the request's max_tokens), else
    ``serve.max_tokens_default`` capped by the room the prompt leaves. 400 when the prompt leaves
    no room, or when prompt + max_tokens exceed the context."""
    room = srv.context_len - prompt_len
    prompt = "prompt" if where == "prompt" else "prompt (the rendered messages)"
    if room < 1:
        raise APIError(400, f"The {prompt} is {prompt_len} tokens long and this model's maximum context length is "
                       f"{srv.context_len} tokens, which leaves no room for a completion: shorten the {where}.",
                       param=where, code="context_length_exceeded")
    if requested is None:
        return min(srv.cfg.max_tokens_default, room)
    if requested > room:
        raise APIError(400, f"This model's maximum context length is {srv.context_len} tokens; the {prompt} is "
                       f"{prompt_len} tokens long and max_tokens is {requested} ({prompt_len + requested} in all): "
                       f"set max_tokens to at most {room} or shorten the {where}.",
                       param="max_tokens", code="context_length_exceeded")
    return requested


def submit(srv: Served, rows: list[list[int]], max_new: int, req: ChatRequest | CompletionRequest,
           on_step: Callable | None = None):
    """Queue the request's rows in the batcher (503 when its queue is full)."""
    try:
        return srv.batcher.submit(rows, max_new_tokens=max_new, temperature=req.temperature, top_p=req.top_p,
                                  seed=req.seed, top_logprobs=req.top_k(), on_step=on_step)
    except Overloaded as e:
        raise APIError(503, f"server overloaded: {e}", type="server_error", code="overloaded") from None


async def finished(future) -> list[Sample]:
    try:
        return await asyncio.wrap_future(future)
    except Exception as e:
        raise APIError(500, f"generation failed: {type(e).__name__}: {e}", type="server_error") from None


async def chat(req: ChatRequest, srv: Served):
    """Render, generate through the batcher, and answer (JSON or an SSE stream)."""
    registry, shown = _registry(req)
    try:
        _, ids = srv.renderer.prompt(req.template_messages(), shown)
    except APIError:
        raise
    except Exception as e:  # a template error on these messages
        raise APIError(400, f"messages cannot be rendered by the chat template: {e}", param="messages") from None
    max_new = budget(len(ids), req.budget(), srv, "messages")
    rows = [ids] * req.n
    shape = Shape("chat.completion.chunk", f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), srv.name,
                  srv.texts, req.top_k() is not None)
    if req.stream:
        streams = [ChoiceStream(srv.renderer.assistant_content, stops=req.stops(), registry=registry,
                                tool_choice=req.tool_choice, fmt=srv.cfg.tool_format) for _ in rows]
        first = [shape.event([shape.chat_piece(i, {"role": "assistant", "content": ""}, [], None)])
                 for i in range(len(rows))]
        return streaming(srv, rows, max_new, req, streams, shape, shape.chat_piece, len(ids), first)
    samples = await finished(submit(srv, rows, max_new, req))
    choices = [build_choice(i, srv.renderer.assistant_content(g.ids, g.stopped), stopped=g.stopped, completion_tokens=len(g.ids),
                            stops=req.stops(), registry=registry, tool_choice=req.tool_choice, fmt=srv.cfg.tool_format)
               for i, g in enumerate(samples)]
    lps = [None if g.logprobs is None else {"content": srv.texts.chat(_reported(srv, g, req))} for g in samples]
    return completion_body(shape.rid, shape.created, srv.name, choices, len(ids), lps)


def _reported(srv: Served, g: Sample, req: ChatRequest | CompletionRequest):
    """The log-probs a response shows for row ``g`` (up to a stop string, without EOS)."""
    return g.logprobs[:reported_tokens(srv.renderer.assistant_content, g.ids, req.stops(), srv.eos_ids)]


async def complete_text(req: CompletionRequest, srv: Served):
    """``/v1/completions``: each prompt (text tokenized as the model does, or ids) n times."""
    prompts = []
    for p in req.prompts():
        ids = srv.tokenizer(p)["input_ids"] if isinstance(p, str) else list(p)
        bad = [t for t in ids if not 0 <= t < len(srv.tokenizer)]
        if bad:
            raise APIError(400, f"prompt holds token id {bad[0]}, outside the vocabulary [0, {len(srv.tokenizer)})",
                           param="prompt")
        prompts.append(ids)
    max_new = min(budget(len(p), req.budget(), srv, "prompt") for p in prompts)
    rows = [p for p in prompts for _ in range(req.n)]
    prompt_tokens = sum(len(p) for p in prompts)
    shape = Shape("text_completion", f"cmpl-{uuid.uuid4().hex}", int(time.time()), srv.name, srv.texts,
                  req.top_k() is not None)
    if req.stream:
        streams = [ChoiceStream(srv.renderer.assistant_content, stops=req.stops()) for _ in rows]
        return streaming(srv, rows, max_new, req, streams, shape, shape.text_piece, prompt_tokens, [])
    samples = await finished(submit(srv, rows, max_new, req))
    choices = []
    for i, g in enumerate(samples):
        text, cut = apply_stop(srv.renderer.assistant_content(g.ids, g.stopped), req.stops())
        lps = None if g.logprobs is None else srv.texts.legacy(_reported(srv, g, req))
        choices.append({"index": i, "text": text, "logprobs": lps,
                        "finish_reason": "stop" if g.stopped or cut else "length"})
    return {"id": shape.rid, "object": "text_completion", "created": shape.created, "model": srv.name,
            "choices": choices, "usage": usage(prompt_tokens, sum(len(g.ids) for g in samples))}


@dataclass(frozen=True)
class Shape:
    """How one response's stream chunks look (chat: ``delta``; completions: ``text``)."""

    object: str
    rid: str
    created: int
    model: str
    texts: TokenTexts
    logprobs: bool
    offsets: dict[int, int] = field(default_factory=dict)  # completions: characters of each choice's tokens so far

    def event(self, choices: list[dict], **extra: Any) -> str:
        return sse({"id": self.rid, "object": self.object, "created": self.created, "model": self.model,
                    "choices": choices} | extra)

    def chat_piece(self, i: int, delta: dict | None, lps: list, finish: str | None) -> dict:
        logprobs = {"content": self.texts.chat(lps)} if self.logprobs and lps else None
        return {"index": i, "delta": delta or {}, "logprobs": logprobs, "finish_reason": finish}

    def text_piece(self, i: int, delta: dict | None, lps: list, finish: str | None) -> dict:
        logprobs = None
        if self.logprobs:
            logprobs = self.texts.legacy(lps, start=self.offsets.get(i, 0))
            self.offsets[i] = self.offsets.get(i, 0) + sum(len(t) for t in logprobs["tokens"])
        return {"index": i, "text": (delta or {}).get("content") or "", "logprobs": logprobs, "finish_reason": finish}


def streaming(srv: Served, rows: list[list[int]], max_new: int, req: ChatRequest | CompletionRequest,
              streams: list[ChoiceStream], shape: Shape, piece: Callable, prompt_tokens: int,
              first: list[str]) -> StreamingResponse:
    """Submit now (so a full queue is still a 503) and answer with the SSE stream of the tokens
    the batcher hands over step by step."""
    loop = asyncio.get_running_loop()
    steps: asyncio.Queue = asyncio.Queue()

    def put(item) -> None:  # runs in the batcher thread
        loop.call_soon_threadsafe(steps.put_nowait, item)

    future = submit(srv, rows, max_new, req, on_step=put)
    future.add_done_callback(lambda _f: put(None))  # after the last step: same thread, same order
    events = sse_events(srv, future, steps, streams, shape, piece, prompt_tokens, req.include_usage())
    return StreamingResponse(_chain(first, events), media_type="text/event-stream")


async def _chain(first: list[str], rest: AsyncIterator[str]) -> AsyncIterator[str]:
    for e in first:
        yield e
    async for e in rest:
        yield e


async def sse_events(srv: Served, future, steps: asyncio.Queue, streams: list[ChoiceStream], shape: Shape,
                     piece: Callable, prompt_tokens: int, include_usage: bool) -> AsyncIterator[str]:
    """Chunks as the steps arrive; the log-probs of tokens that produced no text yet ride on the
    next chunk of their choice. Then each unfinished choice's rest, usage, ``[DONE]``."""
    pending: list[list] = [[] for _ in streams]

    def emit(i: int, deltas: list[dict], finish: str | None) -> list[str]:
        out = []
        for d in deltas:
            out.append(shape.event([piece(i, d, pending[i], None)]))
            pending[i] = []
        if finish:
            out.append(shape.event([piece(i, None, pending[i], finish)]))
            pending[i] = []
        return out

    while (outs := await steps.get()) is not None:
        for o in outs:
            s = streams[o.row]
            if s.done:
                continue
            if o.logprob is not None and o.token not in srv.eos_ids:
                pending[o.row].append(o.logprob)
            for e in emit(o.row, s.push(o.token), s.finish_reason):
                yield e
    try:
        samples = future.result()
    except Exception as e:
        yield sse(APIError(500, f"generation failed: {type(e).__name__}: {e}", type="server_error").body())
        yield "data: [DONE]\n\n"
        return
    for i, (s, g) in enumerate(zip(streams, samples)):
        if not s.done:
            for e in emit(i, s.close(g.stopped), s.finish_reason):
                yield e
    if include_usage:
        yield shape.event([], usage=usage(prompt_tokens, sum(len(g.ids) for g in samples)))
    yield "data: [DONE]\n\n"


def serve(cfg: ServeAppConfig) -> None:
    """Load ``cfg.model``, wrap it in ``HFPolicy`` and serve it with uvicorn until interrupted."""
    import torch
    import uvicorn

    from resrl_agents.models import load_policy
    from resrl_agents.rollout.policy import HFPolicy
    if cfg.serve.num_threads:
        torch.set_num_threads(cfg.serve.num_threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if cfg.serve.device == "auto" \
        else torch.device(cfg.serve.device)
    model, tokenizer = load_policy(cfg.model, device=device)
    name = cfg.serve.model_name or cfg.model.path or cfg.model.name
    fmt = cfg.serve.tool_format or resolve_tool_format(cfg.model.tool_format, ChatRenderer(tokenizer))
    app = create_app(HFPolicy(model, tokenizer, device), tokenizer, name=name,
                     cfg=replace(cfg.serve, tool_format=fmt), context_len=int(model.config.max_position_embeddings))
    print(f"serving model {name!r} at http://{cfg.serve.host}:{cfg.serve.port}/v1 "
          f"(set the name with serve.model_name=...)", flush=True)
    uvicorn.run(app, host=cfg.serve.host, port=cfg.serve.port, log_level=cfg.serve.log_level)


class BackgroundServer:
    """Serve an app with uvicorn in a daemon thread on a free port (tests, notebooks, parity
    checks): ``with BackgroundServer(app) as base_url: OpenAI(base_url=base_url, ...)``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self.base_url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()
