#!/usr/bin/env bash
# The GPU checks, on a machine with a CUDA GPU and this package's environment: the CUDA tests, the
# benchmarks on the GPU, and a one-rank DeepSpeed ZeRO-3 bf16 run with a resume (nccl).
# Last run on an H200 (see the README's Benchmarks section). Usage: bash benchmarks/gpu_checks.sh [OUT_DIR]
set -u
cd "$(dirname "$0")/.."
out=${1:-runs/gpu_checks}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 DS_BUILD_OPS=0
step() { echo "=== $* ($(date +%T))"; }
step "CUDA tests"; python -m pytest -q tests/trainers/test_cuda.py
step "ResRL weighting (per group; all groups at once, their exact SVDs in one call: batched/looped)"
python benchmarks/resrl_weighting.py --groups 8 --tokens 1000 --hidden 1024 --batched
python benchmarks/resrl_weighting.py --groups 8 --tokens 1000 --hidden 1024 --spread 0.5 --batched --repeats 9
python benchmarks/resrl_weighting.py --groups 4 --tokens 8000 --hidden 4096 --repeats 3
step "rollout throughput"
python benchmarks/rollout_throughput.py --env alfworld --repeats 1
python benchmarks/rollout_throughput.py --env webshop --repeats 1
python benchmarks/rollout_throughput.py --env alfworld --repeats 1 --dtype bfloat16
step "step overhead, 137M-parameter bf16 model"
python benchmarks/step_overhead.py --batches 2 --repeats 3 --threads 4 model.dtype=bfloat16 model.hidden_size=1024 \
  model.num_layers=12 model.num_heads=16 model.num_kv_heads=4 model.intermediate_size=2816
step "DeepSpeed ZeRO-3, bf16, one rank"
ds=(-m resrl_agents.train env=math model=tiny algo=resrl algo.estimator=nsr trainer.lr=1e-3 trainer.warmup_steps=0
    model.dtype=bfloat16 trainer.deepspeed.enabled=true trainer.deepspeed.zero_stage=3 rollout.prompts_per_step=2
    rollout.group_size=4 rollout.max_new_tokens=16 trainer.save_every=1 trainer.progress=false trainer.output_dir="$out/ds3")
python -m torch.distributed.run --standalone --nproc_per_node 1 "${ds[@]}" trainer.steps=2 &&
  python -m torch.distributed.run --standalone --nproc_per_node 1 "${ds[@]}" trainer.steps=3 trainer.resume=true &&
  echo "DeepSpeed run: 3 steps, checkpoints in $out/ds3/checkpoints"
