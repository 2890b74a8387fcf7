#!/usr/bin/env bash
# Run on the GPU machine (the `device` tool), in the repository root, with .whl carried
# (benchmarks/device/fetch_wheels.sh made it here): installs the wheels beside the image's
# packages, prints the versions used, then runs benchmarks/gpu_vs_trl.py --mode full (every
# arm, Qwen2.5-0.5B's shape) and writes its table to $OUT/gpu_full.log and every run to
# $OUT/gpu_full.json. Arguments are passed on to gpu_vs_trl.py (e.g. --arms ours-ppo trl).
set -euo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$PY" - <<'PY' 2>&1 | tee "$OUT/versions.txt"
import importlib.metadata as m, torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for name in ("transformers", "trl", "datasets", "pyarrow", "accelerate", "math-verify"):
    print(name, m.version(name))
import entropy_rl.training.trainer, trl, datasets  # noqa: F401  (fails here, not in a child)
PY
"$PY" benchmarks/gpu_vs_trl.py --mode full --json "$OUT/gpu_full.json" "$@" 2>&1 \
  | tee "$OUT/gpu_full.log"
