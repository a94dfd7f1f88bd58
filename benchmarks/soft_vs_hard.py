"""Soft vs hard attention, trained with the same budget on the same data.

    python -m benchmarks.soft_vs_hard [--out runs/soft_vs_hard] [--set epochs=10 ...]

Runs the recipe ``benchmarks/recipes/soft_vs_hard.json`` (``benchmarks.experiment``: the
default captioner trained twice, same data, seed, epochs, sizes, schedule; only
--attention differs; each best model scored on the test split, greedy: BLEU-4, CIDEr-D,
object recall, attention correctness) and prints its table. Then, for hard attention, it
measures the variance of the gradient estimate on one fixed batch, over 30 independent
draws of the sampled cells, with the trained moving-average baseline and with the
baseline set to 0: the REINFORCE estimate is unbiased either way, the baseline is there
to shrink its variance. That measurement reaches inside the model (its attention
weights, its baseline, the layers' random state): the internal imports are for it.
"""

import argparse
import os

from benchmarks import experiment
from benchmarks.common import ROOT


def gradient_variance(model, batch, baseline, draws=30):
    """Total variance over draws of the gradient of the training loss w.r.t. the
    attention layer's weights (read off one SGD step of rate 1 from the same weights)."""
    import keras
    import numpy as np
    from keras import ops

    from captioner.models.captioner import Captioner
    from captioner.training.loop import reseed_layers
    probe = Captioner(model.model_config.to_dict())
    probe.build_by_calling()
    probe.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    x, y, w = batch
    attention = [v for v in probe.trainable_weights if "attention" in v.path]
    weights = model.get_weights()
    grads = []
    for draw in range(draws):
        probe.set_weights(weights)
        if baseline is not None:
            probe.baseline.assign(baseline)
        reseed_layers(probe, seed=1000 + draw, epoch=0)
        before = [ops.convert_to_numpy(v) for v in attention]
        probe.train_on_batch(x, y, sample_weight=w)
        grads.append(np.concatenate([(b - ops.convert_to_numpy(v)).ravel()
                                     for b, v in zip(before, attention)]))
    grads = np.array(grads)
    return float(grads.var(0).sum()), float(np.abs(grads.mean(0)).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "soft_vs_hard"))
    parser.add_argument("--set", nargs="+", default=[], metavar="OPTION=VALUE",
                        help="every member's option set anew (as benchmarks.experiment's)")
    args = parser.parse_args()
    rows = experiment.main(["soft_vs_hard", "--out", args.out, "--set", *args.set]
                           if args.set else ["soft_vs_hard", "--out", args.out])
    if "hard" not in rows:
        return
    import keras

    from captioner import load_model
    from captioner.data.coco import load_coco_split
    from captioner.data.dataset import CaptionBatches
    from captioner.saving import load_keras_file
    from captioner.training.checkpoint import latest_model_path
    out = os.path.join(args.out, "hard")
    saved = load_model(out)
    size = saved.model.model_config.encoder.image_size
    train = load_coco_split(experiment.data_folder(experiment.load_recipe("soft_vs_hard")),
                            "train")[0]
    batch = CaptionBatches(train[:32], saved.vocabulary, size, 32,
                           saved.model.model_config.max_length, shuffle=False)[0]
    last = load_keras_file(latest_model_path(out))
    baseline = float(keras.ops.convert_to_numpy(last.baseline))
    with_baseline, _ = gradient_variance(last, batch, None)
    zero, _ = gradient_variance(last, batch, 0.0)
    print(f"\nhard attention, gradient of the loss w.r.t. the attention weights on one batch "
          f"of 32, 30 draws: total variance {with_baseline:.4g} with the moving-average "
          f"baseline (b = {baseline:.2f}), {zero:.4g} with b = 0 ({zero / with_baseline:.1f}x)")


if __name__ == "__main__":
    main()
