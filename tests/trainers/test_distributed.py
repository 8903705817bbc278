"""DeepSpeed ZeRO data parallelism on CPU: two ranks on gloo, launched by torch.distributed.run.

The update of groups split over two ranks (which run different numbers of micro-batches) must
equal one process's update of the whole batch, for ZeRO stages 0-3, and a rank with fewer
mini-batches keeps in step with the others; a ZeRO-3 training run writes checkpoints with its
shards and resumes from them. Multi-GPU (nccl) runs are not tested here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def launch(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    # CPU ranks on gloo even where a GPU is present (two ranks cannot share one GPU under nccl)
    env = os.environ | {"OMP_NUM_THREADS": "1", "DS_BUILD_OPS": "0", "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    return res


def test_zero_updates_equal_the_single_process_update(tmp_path):
    out = tmp_path / "report.json"
    launch([str(REPO / "tests/trainers/ds_update_worker.py"), str(out), str(tmp_path / "cache")])
    report = json.loads(out.read_text())
    assert sorted(report) == ["0", "1", "2", "3"]
    for stage, r in report.items():
        assert r["moved"] > 5e-4, stage  # the reference update moved the weights (lr 1e-3)
        assert abs(r["loss"] - r["loss_ref"]) < 1e-6, (stage, r)  # losses over global token counts
        assert abs(r["grad_norm"] / r["grad_norm_ref"] - 1) < 1e-4, (stage, r)  # same gradient scale
        assert r["max_diff"] < 0.03 * r["moved"], (stage, r)  # same weights (Adam's first step is ~lr * sign(g))
        assert r["steps_per_group"] == 3.0 and r["ranks_differ"] == 0.0, (stage, r)  # uneven mini-batch counts


def test_zero3_training_run_checkpoints_and_resumes(tmp_path):
    out = tmp_path / "run"
    # NSR advantages (every untrained answer is wrong: A = -1) so that the untrained model gets gradients
    common = ["-m", "resrl_agents.train", "env=math", "model=tiny", "algo=resrl", "algo.estimator=nsr", "trainer.lr=1e-3",
              "trainer.warmup_steps=0", "trainer.deepspeed.enabled=true",
              "trainer.deepspeed.zero_stage=3", "rollout.prompts_per_step=2", "rollout.group_size=4",
              "rollout.max_new_tokens=16", "trainer.save_every=1", "trainer.progress=false", "trainer.tensorboard=false",
              f"trainer.output_dir={out}", f"model.cache_dir={tmp_path / 'cache'}"]
    launch(common + ["trainer.steps=2"])
    launch(common + ["trainer.steps=3", "trainer.resume=true"])

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # rank 0 logs, once per step
    for r in rows:
        assert r["rollout/groups_trained"] == 2.0  # one group per rank, summed
        assert r["loss/optimizer_steps"] == 1.0 and r["loss/grad_norm"] > 0
        assert r["resrl/fallback_no_pos"] == 2.0  # no positives anywhere: both ranks' groups fall back
    ckpt = out / "checkpoints" / "step_000003"
    shards = sorted(p.name for p in (ckpt / "deepspeed" / "zero").iterdir())
    assert [s for s in shards if "optim_states" in s] == ["zero_pp_rank_0_mp_rank_00_optim_states.pt",
                                                          "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    assert (ckpt / "rng_rank1.pt").exists() and not list((out / "checkpoints").glob(".tmp*"))

    from transformers import AutoModelForCausalLM

    # one process cannot pick up the ZeRO optimizer shards: it says so and how to go on
    res = subprocess.run([sys.executable, *common, "trainer.steps=4", "trainer.resume=true", "trainer.deepspeed.enabled=false"],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=os.environ | {"CUDA_VISIBLE_DEVICES": ""})
    assert res.returncode != 0 and "was written under DeepSpeed" in res.stderr
    # full weights, gathered from the ZeRO-3 partitions, and the resumed step changed them
    new = AutoModelForCausalLM.from_pretrained(ckpt)
    old = AutoModelForCausalLM.from_pretrained(out / "checkpoints" / "step_000002")
    moved = max(float((a - b).abs().max()) for a, b in zip(new.state_dict().values(), old.state_dict().values()))
    assert 0 < moved < 1e-2


def test_zero2_sft_follows_the_single_process_run(tmp_path):
    def run(name: str, nproc: int, extra: list[str]) -> list[dict]:
        out = tmp_path / name
        launch(["-m", "resrl_agents.sft", "env=math", "model=tiny", "trainer.steps=3", "trainer.batch_size=8",
                "trainer.num_examples=32", "trainer.lr=1e-3", "trainer.warmup_steps=1", "trainer.progress=false",
                "trainer.tensorboard=false", f"trainer.output_dir={out}", f"model.cache_dir={tmp_path / 'cache'}", *extra], nproc)
        return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]

    single = run("single", 1, [])
    zero2 = run("zero2", 2, ["trainer.deepspeed.enabled=true", "trainer.deepspeed.zero_stage=2"])
    assert [r["step"] for r in zero2] == [1, 2, 3]
    for a, b in zip(single, zero2):  # the same batches, each split over two ranks
        assert abs(a["loss/sft"] - b["loss/sft"]) < 1e-4 * a["loss/sft"], (a, b)
        assert abs(a["loss/grad_norm"] / b["loss/grad_norm"] - 1) < 1e-3, (a, b)
    assert (tmp_path / "zero2" / "checkpoints" / "step_000003" / "deepspeed").is_dir()


def test_without_a_launcher_deepspeed_runs_as_a_group_of_one(tmp_path):
    out = tmp_path / "run"
    env = os.environ | {"OMP_NUM_THREADS": "1", "DS_BUILD_OPS": "0", "CUDA_VISIBLE_DEVICES": ""}
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    res = subprocess.run([sys.executable, "-m", "resrl_agents.train", "env=math", "model=tiny", "trainer.deepspeed.enabled=true",
                          "trainer.deepspeed.zero_stage=1", "trainer.steps=1", "rollout.prompts_per_step=1",
                          "rollout.group_size=2", "rollout.max_new_tokens=8", "trainer.progress=false",
                          "trainer.tensorboard=false", f"trainer.output_dir={out}", f"model.cache_dir={tmp_path / 'cache'}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    assert (out / "checkpoints" / "step_000001" / "deepspeed").is_dir()


def test_zero2_lora_run_saves_adapters_and_resumes(tmp_path):
    """LoRA under ZeRO-2 over two ranks: ZeRO shards without the frozen base, PEFT adapter files,
    a resume that continues from them, and the base weights of the merged export untouched where
    no adapter sits (the norms)."""
    out = tmp_path / "run"
    common = ["-m", "resrl_agents.train", "env=math", "model=tiny", "algo=nsr", "trainer.lr=1e-2", "trainer.warmup_steps=0",
              "model.lora.r=4", "trainer.export_merged=true", "trainer.deepspeed.enabled=true",
              "trainer.deepspeed.zero_stage=2", "rollout.prompts_per_step=2", "rollout.group_size=2",
              "rollout.max_new_tokens=8", "trainer.save_every=1", "trainer.progress=false", "trainer.tensorboard=false",
              f"trainer.output_dir={out}", f"model.cache_dir={tmp_path / 'cache'}"]
    launch(common + ["trainer.steps=1"])
    launch(common + ["trainer.steps=2", "trainer.resume=true"])

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss/grad_norm"] > 0 for r in rows)
    import torch
    from safetensors.torch import load_file

    first, second = (out / "checkpoints" / f"step_00000{s}" for s in (1, 2))
    for ckpt in (first, second):
        assert (ckpt / "adapter_model.safetensors").exists() and (ckpt / "merged" / "model.safetensors").exists()
        assert not (ckpt / "model.safetensors").exists()
        module = torch.load(ckpt / "deepspeed" / "zero" / "mp_rank_00_model_states.pt", weights_only=False)["module"]
        assert any("lora_B" in k for k in module)  # the shards hold the adapters, not the frozen base weights
        assert not any(".base_layer." in k or "embed_tokens" in k or "layernorm" in k for k in module)
    a, b = load_file(first / "adapter_model.safetensors"), load_file(second / "adapter_model.safetensors")
    assert set(a) == set(b) and max(float((a[k] - b[k]).abs().max()) for k in a) > 0  # the resumed step trained
    m1, m2 = load_file(first / "merged" / "model.safetensors"), load_file(second / "merged" / "model.safetensors")
    assert all(torch.equal(m1[k], m2[k]) for k in m1 if "norm" in k)
