#!/usr/bin/env bash
# The accelerator check (benchmarks/device_check.py) on a machine with JAX and a GPU but no
# TensorFlow, Keras or the project's pure-Python dependencies, and no network: they travel
# as wheels in .whl/ (benchmarks/device_wheels.sh fetches them here, where pip works).
# About 5 minutes on one H200. Try it on a CPU with: benchmarks/device_check.sh --quick
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
if ! python3 -c "import keras" 2>/dev/null && compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
python3 -c "import jax; print('devices:', jax.devices())"
python3 -m benchmarks.device_check "$@"
