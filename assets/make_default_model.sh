#!/usr/bin/env bash
# Rebuilds the bundled default model and sample images from scratch (CPU, about 20 min).
#   bash assets/make_default_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m captioner synth --out data/synthetic --seed 0
# The defaults (doubly stochastic lambda 0.1, attention supervision from the instances'
# boxes); 22 epochs: this simple set converges by then (docs/research/default-model.md).
rm -rf runs/default
$PY -m captioner train --coco data/synthetic --out runs/default --epochs 22 --seed 0
mkdir -p assets/model assets/samples
cp runs/default/{model.keras,vocab.json,config.json,domain.json,MODEL_CARD.md,metrics.json,training_curves.png} assets/model/
# Six test-split images (never seen in training) as samples.
for id in 004201 004202 004203 004204 004205 004206; do
  cp "data/synthetic/test2017/$id.png" "assets/samples/shapes_$id.png"
done
