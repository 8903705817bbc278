"""LoRA through PEFT: low-rank adapters on a loaded policy, trained instead of its weights.

``add_lora`` freezes every base weight and adds adapters (B = 0, so the adapted model starts as
the base), or reloads the adapters of a checkpoint to resume. The adapted model is a
``peft.PeftModel`` that the recipe, the scoring pass and ``HFPolicy`` use like any causal LM
(``get_decoder`` reaches the base model's decoder, whose layers now run the adapters).

Consumers that want plain Hugging Face weights (vLLM's weight sync, a merged export) get them from
``hf_state_dict``: each adapted weight as W + (alpha / r) B A under the base model's own names,
computed without touching W (PEFT's in-place ``merge_adapter`` / ``unmerge_adapter`` would round W).
"""

from __future__ import annotations

from pathlib import Path

import torch

from resrl_agents.config.schema import LoraConfig

ALL_LINEAR = "all-linear"  # PEFT's shorthand: every linear layer except the output head


def is_peft(model) -> bool:
    """True for a model wrapped by PEFT (imported only when PEFT is loaded already)."""
    import sys

    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def add_lora(model, cfg: LoraConfig, adapter_dir: str | Path | None = None):
    """``model`` with its weights frozen and LoRA adapters added (``cfg``), or those saved in
    ``adapter_dir`` (a checkpoint written with LoRA on) loaded trainable, to resume."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import PeftModel, get_peft_model

    if cfg.r < 1 or cfg.alpha <= 0 or not 0 <= cfg.dropout < 1:
        raise ValueError(f"model.lora needs r >= 1, alpha > 0 and 0 <= dropout < 1, got r={cfg.r}, "
                         f"alpha={cfg.alpha}, dropout={cfg.dropout}")
    if adapter_dir is not None:
        if not (Path(adapter_dir) / "adapter_config.json").exists():
            raise ValueError(f"{adapter_dir} holds no LoRA adapter (adapter_config.json): it was written without "
                             f"model.lora; resume it with model.lora.r=0, or start a new LoRA run from it "
                             f"(model.path={adapter_dir})")
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    targets = list(cfg.target_modules)
    config = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, task_type="CAUSAL_LM",
                            target_modules=ALL_LINEAR if targets == [ALL_LINEAR] else targets)
    try:
        return get_peft_model(model, config)
    except ValueError as e:  # PEFT's "Target modules ... not found in the base model"
        raise ValueError(f"model.lora.target_modules={targets}: {e}") from e


@torch.no_grad()
def hf_state_dict(model) -> dict[str, torch.Tensor]:
    """The weights as a plain Hugging Face checkpoint names them: ``model.state_dict()``, or for a
    PEFT model its base's, with each adapted weight merged (W + delta) and adapter tensors left out."""
    if not is_peft(model):
        return model.state_dict()
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    delta: dict[str, torch.Tensor] = {}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            adapters = [a for a in module.active_adapters if a in module.lora_A or a in module.lora_embedding_A]
            if adapters:
                delta[f"{name}.weight"] = sum(module.get_delta_weight(a) for a in adapters)
    out = {}
    for key, tensor in base.state_dict().items():
        if ".lora_" in key:
            continue
        key = key.replace(".base_layer.", ".")
        out[key] = tensor + delta[key].to(tensor.dtype) if key in delta else tensor
    return out


def save_merged(model, tokenizer, out_dir: str | Path) -> None:
    """A full Hugging Face folder (config, safetensors, tokenizer) of the model as it generates:
    with LoRA, the adapters merged in, so ``AutoModelForCausalLM.from_pretrained`` and vLLM load it."""
    if is_peft(model):
        model.get_base_model().save_pretrained(out_dir, state_dict=hf_state_dict(model), safe_serialization=True)
    else:
        model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
