#!/usr/bin/env bash
# The test suite: everything in .venv with one torch thread, then the vLLM tests (tests/*/test_vllm_*.py,
# which skip in .venv) in .venv-vllm, where vLLM's CPU build is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
.venv/bin/python -m pytest -q -p no:cacheprovider
if [ -x .venv-vllm/bin/python ]; then
  .venv-vllm/bin/python -m pytest -q -p no:cacheprovider tests/*/test_vllm_*.py
else
  echo "no .venv-vllm: vLLM tests skipped (bash scripts/setup.sh installs it)"
fi
