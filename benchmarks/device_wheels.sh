#!/usr/bin/env bash
# Fetches into .whl/ the wheels benchmarks/device_check.sh installs on a GPU machine that
# has JAX, NumPy, Pillow, Matplotlib and tqdm but not Keras (Python 3.12, x86-64). The check
# scores no captions: pycocoevalcap (100 MB with its Java tools) and NLTK stay behind.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
           --platform manylinux1_x86_64)
version() { grep -i "^$1==" requirements.txt | cut -d= -f3; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl \
    "keras==$(version keras)" namex optree 2>&1 | grep -v "^WARNING" || true
ls .whl
