"""Config composition of eval/serve, the --api-key flag, and `python -m resrl_agents.serve` end to end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from resrl_agents.config.eval_schema import EvalConfig, PolicyConfig, ServeAppConfig, register_eval_configs
from resrl_agents.serve import api_key_flag

REPO = Path(__file__).resolve().parents[2]


def test_api_key_flag():
    assert api_key_flag(["model.path=x", "--api-key", "k1"]) == ["model.path=x", "serve.api_key=k1"]
    assert api_key_flag(["--api-key=k2", "serve.port=9"]) == ["serve.api_key=k2", "serve.port=9"]


def test_configs_compose(monkeypatch):
    register_eval_configs()
    monkeypatch.setenv("RESRL_API_KEY", "from-env")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    with initialize_config_module("resrl_agents.config", version_base="1.3"):
        serve = OmegaConf.to_object(compose("serve", overrides=["serve.port=9001"]))
        ev = OmegaConf.to_object(compose("eval", overrides=["policy=openai", "policy.base_url=http://h/v1",
                                                             "policy.model=m", "n=4", "checkpoints=[a,b]"]))
        hf = OmegaConf.to_object(compose("eval"))
    assert isinstance(serve, ServeAppConfig) and serve.serve.api_key == "from-env" and serve.serve.port == 9001
    assert isinstance(ev, EvalConfig) and isinstance(ev.policy, PolicyConfig)
    got = (ev.policy.backend, ev.policy.model, ev.policy.api_key, ev.n, ev.checkpoints)
    assert got == ("openai", "m", "sk-env", 4, ["a", "b"])
    assert ev.policy.send_seed is False  # unseeded requests batch on the server (2x faster); opt in to seeds
    assert hf.policy.backend == "hf" and hf.env.id == "resrl_agents/Math-v0" and hf.model.name == "tiny"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_entry_point(tiny_cfg):
    port = _free_port()
    cmd = [sys.executable, "-m", "resrl_agents.serve", f"serve.port={port}", "serve.device=cpu", "serve.num_threads=1",
           f"model.cache_dir={tiny_cfg.cache_dir}", "serve.log_level=warning", "serve.model_name=my-tiny",
           "--api-key", "cli-key"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if k != "RESRL_API_KEY"}
                            | {"OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.25)
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="cli-key", max_retries=0) as client:
            assert [m.id for m in client.models.list().data] == ["my-tiny"]
            r = client.chat.completions.create(model="my-tiny", messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=4)
            assert r.choices[0].finish_reason in ("stop", "length") and r.model == "my-tiny"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert f"serving model 'my-tiny' at http://127.0.0.1:{port}/v1" in proc.stdout.read()  # the start-up line
