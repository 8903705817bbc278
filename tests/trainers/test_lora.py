"""LoRA through PEFT (``model.lora``): only adapters train, ResRL reads the adapted model's hidden
states, checkpoints hold the adapters (and on request a merged HF folder), resume reproduces the
uninterrupted run, and the merged weights are the adapted model's."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from resrl_agents.config.schema import AlgoConfig, EnvConfig, LoraConfig, RolloutConfig, TrainConfig, TrainerConfig
from resrl_agents.models.lora import add_lora, hf_state_dict, is_peft, save_merged
from resrl_agents.trainers.distributed import make_engine
from resrl_agents.trainers.forward import capture_hidden

LORA = LoraConfig(r=4, alpha=8.0)


def _ids(tok) -> torch.Tensor:
    text = tok.apply_chat_template([{"role": "user", "content": "What is 37 + 45?"}], add_generation_prompt=True,
                                   tokenize=False)
    return torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])


def _adapted(tiny):
    """A LoRA copy of the tiny model whose adapters are not zero (as after some training)."""
    model = add_lora(copy.deepcopy(tiny[0]), LORA)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _plain(tiny, state: dict[str, torch.Tensor]):
    model = copy.deepcopy(tiny[0])
    model.load_state_dict(state, strict=True)  # every HF name present, nothing extra
    return model.eval()


def test_only_adapters_train_and_the_optimizer_holds_only_them(tiny):
    model = add_lora(copy.deepcopy(tiny[0]), LORA)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    # all-linear: the 7 projections of each of the 2 layers, never the LM head
    assert len(trainable) == 2 * 7 * 2 and not any("lm_head" in n for n in trainable)
    engine = make_engine(model, TrainerConfig(), torch.device("cpu"))
    held = [p for g in engine.optimizer.param_groups for p in g["params"]]
    assert len(held) == len(trainable) and all(p.requires_grad for p in held)


def test_merged_weights_are_the_adapted_model(tiny):
    """``hf_state_dict`` has exactly the base checkpoint's names; a plain model loaded with it gives
    the adapted model's logits (what vLLM receives each step and what the export holds)."""
    adapted = _adapted(tiny)
    merged = hf_state_dict(adapted)
    assert set(merged) == set(tiny[0].state_dict())
    ids = _ids(tiny[1])
    with torch.no_grad():
        want = adapted(input_ids=ids).logits
        got = _plain(tiny, merged)(input_ids=ids).logits
        base = tiny[0](input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (base - want).abs().max() > 1e-2  # the adapters do change the model


def test_resrl_reads_the_hidden_states_of_the_adapted_model(tiny):
    """``capture_hidden`` reaches the decoder through the PEFT wrapper, and what it captures is the
    adapted model's penultimate layer, not the base's."""
    adapted = _adapted(tiny)
    plain = _plain(tiny, hf_state_dict(adapted))
    ids = _ids(tiny[1])
    captured = {}
    with torch.no_grad():
        for name, model in (("adapted", adapted), ("merged", plain), ("base", tiny[0])):
            with capture_hidden(model, -2) as h:
                model(input_ids=ids)
            captured[name] = h.pop()
    torch.testing.assert_close(captured["adapted"], captured["merged"], atol=1e-5, rtol=0)
    assert (captured["adapted"] - captured["base"]).abs().max() > 1e-3


def test_gradient_checkpointing_still_reaches_the_adapters(tiny):
    """``model.gradient_checkpointing=true`` with LoRA: checkpointed blocks whose inputs (frozen
    embeddings) need no grad could drop the adapters' gradients (PEFT makes the inputs require grad)."""
    model = copy.deepcopy(tiny[0])
    model.gradient_checkpointing_enable()  # the recipe's call (reentrant by default)
    model = add_lora(model, LORA).train()
    model(input_ids=_ids(tiny[1])).logits.sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and float(g.abs().max()) > 0 for g in grads)


def test_bad_lora_settings_name_the_key(tiny):
    with pytest.raises(ValueError, match=r"model.lora.target_modules=\['qkv_fused'\]"):
        add_lora(copy.deepcopy(tiny[0]), LoraConfig(r=4, target_modules=["qkv_fused"]))
    with pytest.raises(ValueError, match="model.lora needs r >= 1"):
        add_lora(copy.deepcopy(tiny[0]), LoraConfig(r=4, dropout=1.5))
    with pytest.raises(ValueError, match="holds no LoRA adapter"):
        add_lora(copy.deepcopy(tiny[0]), LORA, adapter_dir=tiny[0].name_or_path)


def _config(tiny_cfg, out, steps: int, resume: bool = False) -> TrainConfig:
    """NSR on 2-digit addition: the untrained tiny model fails every task (A = -1 everywhere), so
    every step has a real gradient."""
    model = dataclasses.replace(tiny_cfg, lora=LORA)
    return TrainConfig(
        env=EnvConfig(kwargs={"source": "arithmetic", "difficulty": 1, "split": "train"}), model=model,
        algo=AlgoConfig(name="nsr", estimator="nsr", resrl=True, rank=4),
        rollout=RolloutConfig(group_size=4, prompts_per_step=2, max_new_tokens=12, max_context_tokens=512),
        trainer=TrainerConfig(steps=steps, lr=1e-2, warmup_steps=0, device="cpu", num_threads=1, output_dir=str(out),
                              save_every=1, keep_checkpoints=3, resume=resume, export_merged=True,
                              tensorboard=False, progress=False))


def _run(cfg: TrainConfig):
    from resrl_agents.trainers.recipe import RLRecipe

    recipe = RLRecipe(cfg)
    recipe.setup()
    try:
        recipe.train()
    finally:
        recipe.cleanup()
    return recipe


@pytest.mark.slow
def test_lora_rl_run_trains_checkpoints_resumes_and_exports(tiny, tiny_cfg, tmp_path):
    from transformers import AutoModelForCausalLM

    from resrl_agents.trainers.metrics import read_metrics

    base_before = {k: v.clone() for k, v in tiny[0].state_dict().items()}
    full = _run(_config(tiny_cfg, tmp_path / "full", steps=3))
    assert is_peft(full.model)
    rows = read_metrics(tmp_path / "full" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["loss/grad_norm"] > 0 for r in rows)
    assert all(r["rollout/drift_rate"] == 0.0 for r in rows)

    # base weights bit-identical, adapters moved (B starts at zero), the optimizer's state is theirs
    base = full.model.get_base_model().state_dict()
    for key, before in base_before.items():
        assert torch.equal(base[key.replace(".weight", ".base_layer.weight")] if key not in base else base[key], before), key
    lora_b = [p for n, p in full.model.named_parameters() if "lora_B" in n]
    assert all(float(p.detach().abs().max()) > 0 for p in lora_b)
    assert len(full.optimizer.state) == sum(p.requires_grad for p in full.model.parameters())

    # checkpoint: PEFT adapter files, trainer state, a merged HF folder; no full base copy
    ckpt = tmp_path / "full" / "checkpoints" / "step_000003"
    names = {p.name for p in ckpt.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "trainer_state.pt", "merged"} <= names
    assert "model.safetensors" not in names
    ids = _ids(full.tokenizer)
    with torch.no_grad():
        want = full.model.eval()(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(ckpt / "merged").eval()
        torch.testing.assert_close(merged(input_ids=ids).logits, want, atol=1e-5, rtol=0)
        # the adapter folder itself loads too (transformers' PEFT integration, base from adapter_config.json)
        adapter = AutoModelForCausalLM.from_pretrained(ckpt).eval()
        torch.testing.assert_close(adapter(input_ids=ids).logits, want, atol=1e-5, rtol=0)

    # resume from step 2 of an interrupted run: the same metrics and adapters as the full run
    part = tmp_path / "part"
    _run(_config(tiny_cfg, part, steps=2))
    resumed = _run(_config(tiny_cfg, part, steps=3, resume=True))
    again = read_metrics(part / "metrics.jsonl")
    assert [r["step"] for r in again] == [1, 2, 3]
    for key in ("loss/policy", "loss/grad_norm", "rollout/response_len", "resrl/frac_groups_weighted"):
        assert again[2][key] == pytest.approx(rows[2][key], rel=1e-5, abs=1e-7), key
    for (name, a), b in zip(full.model.named_parameters(), resumed.model.parameters()):
        if a.requires_grad:
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    from resrl_agents.trainers.recipe import RLRecipe

    no_lora = _config(tiny_cfg, part, steps=4, resume=True)
    no_lora.model.lora = LoraConfig()
    with pytest.raises(ValueError, match="holds LoRA adapters: resume it with the run's model.lora settings"):
        RLRecipe(no_lora).setup()


def test_save_merged_of_a_plain_model_is_its_checkpoint(tiny, tmp_path):
    save_merged(tiny[0], tiny[1], tmp_path)
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "tokenizer_config.json").exists()


def test_sft_refuses_lora(tiny_cfg):
    from resrl_agents.config.schema import SFTConfig
    from resrl_agents.trainers.sft import SFTRecipe

    cfg = SFTConfig(model=dataclasses.replace(tiny_cfg, lora=LORA))
    with pytest.raises(ValueError, match="SFT trains every weight: set model.lora.r=0"):
        SFTRecipe(cfg).setup()
