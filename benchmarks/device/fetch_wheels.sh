#!/usr/bin/env bash
# Run here (a machine with PyPI), in the repository root, before a GPU session's device call:
# downloads into .whl/ (ignored by git) the wheels that benchmarks/device/full_gpu.sh installs
# on the GPU machine, whose image (Python 3.12, torch 2.11, transformers 5.17) lacks them or
# has older versions. The versions are those this project is tested with (.venv). About 16 MB;
# pyarrow is not carried (its wheel is 55 MB, too large beside the tree for the 64 MiB
# transfer): the image's is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir .whl
PY=${PYTHON:-.venv/bin/python}
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl \
  transformers==5.24.0 trl==1.16.0 datasets==5.2.0 math-verify==0.9.0 \
  latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2 dill==0.4.1 \
  multiprocess==0.70.19 regex==2026.11.19
ls -l .whl
du -sh .whl
