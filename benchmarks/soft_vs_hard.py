"""Soft vs hard attention, trained with the same budget on the same data.

    python benchmarks/soft_vs_hard.py [--coco data/synthetic] [--epochs 10] [--out runs/bench]

Trains the default captioner twice with train.py's Trainer (same data, seed, epochs,
sizes, schedule; only --attention differs), then scores each best model on the test
split (greedy): BLEU-4, CIDEr-D, object recall, attention correctness. For hard attention
it also measures the variance of the gradient estimate on one fixed batch, over 30
independent draws of the sampled cells, with the trained moving-average baseline and with
the baseline set to 0: the REINFORCE estimate is unbiased either way, the baseline is
there to shrink its variance. Prints one Markdown table (the README's).
"""

import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from captioner.cli import import_keras_quietly  # noqa: E402


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
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coco", default=os.path.join(root, "data", "synthetic"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(root, "runs", "soft_vs_hard"))
    parser.add_argument("--doubly-stochastic", type=float, default=0.1)
    parser.add_argument("--train-images", type=int, default=None, help="a subset, for a quick run")
    parser.add_argument("--hard-warmup-epochs", type=int, default=0)
    parser.add_argument("--only", choices=("soft", "hard"), default=None)
    parser.add_argument("--credit", choices=("to_go", "caption"), default="to_go",
                        help="what a sampled cell is judged by (train.py --credit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=96,
                        help="the small CNN's grid is image size / 8 on a side")
    args = parser.parse_args()
    import_keras_quietly()
    import keras
    import numpy as np

    from captioner import load_model
    from captioner.config import DecoderConfig, EncoderConfig, LossConfig, ModelConfig, TrainConfig
    from captioner.data.coco import load_coco_split
    from captioner.data.dataset import CaptionBatches
    from captioner.saving import load_keras_file
    from captioner.training.captioning import CaptionTrainer, TrainingData

    train = load_coco_split(args.coco, "train")[0][:args.train_images]
    val, val_instances = load_coco_split(args.coco, "val")
    test, test_instances = load_coco_split(args.coco, "test")
    rows = {}
    for kind in [args.only] if args.only else ("soft", "hard"):
        out = os.path.join(args.out, kind)
        config = ModelConfig(encoder=EncoderConfig(image_size=args.image_size),
                             decoder=DecoderConfig(attention=kind),
                             loss=LossConfig(credit=args.credit,
                                             doubly_stochastic=args.doubly_stochastic))
        trainer = CaptionTrainer(TrainingData(train, val, args.coco, val_instances), out, config,
                          TrainConfig.of(epochs=args.epochs, seed=args.seed,
                                      hard_warmup_epochs=args.hard_warmup_epochs
                                      if kind == "hard" else 0))
        from captioner.training.checkpoint import Checkpoints, latest_model_path
        resume = Checkpoints(os.path.join(out, "checkpoint")).exists()
        history = trainer.run(resume=resume, progress=False)
        saved = load_model(out)
        model, vocabulary = saved.model, saved.vocabulary
        scores = saved.evaluate(test, test_instances, batch_size=32,
                                metrics=("BLEU", "CIDEr")).scores
        rows[kind] = dict(scores, epoch_seconds=np.median([r["train_seconds"] for r in history]))
        if kind == "hard":
            last = load_keras_file(latest_model_path(out))
            batches = CaptionBatches(train[:32], vocabulary, args.image_size, 32,
                                     model.model_config.max_length, shuffle=False)
            baseline = float(keras.ops.convert_to_numpy(last.baseline))
            rows[kind]["variance_baseline"], _ = gradient_variance(last, batches[0], None)
            rows[kind]["variance_zero"], _ = gradient_variance(last, batches[0], 0.0)
            rows[kind]["baseline"] = baseline

    print(f"\nsynthetic data ({len(train)} training images), {args.epochs} epochs each, "
          f"seed {args.seed}, {args.image_size} px, lambda {args.doubly_stochastic}, hard: warm-up "
          f"{args.hard_warmup_epochs} epochs, credit {args.credit}; "
          f"test split {len(test)} images, greedy; "
          f"Keras {keras.__version__} on {keras.backend.backend()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    print("| attention | BLEU-4 | CIDEr-D | object recall | object precision | "
          "attention correctness (uniform) | s/epoch (training, median) |")
    print("|---|---|---|---|---|---|---|")
    for kind, s in rows.items():
        print(f"| {kind} | {s['BLEU-4']:.3f} | {s['CIDEr']:.3f} | {s['object_recall']:.3f} | "
              f"{s['object_precision']:.3f} | {s['attention_correctness']:.3f} "
              f"({s['uniform_baseline']:.3f}) | {s['epoch_seconds']:.1f} |")
    hard = rows.get("hard")
    if hard is None:
        return
    print(f"\nhard attention, gradient of the loss w.r.t. the attention weights on one batch "
          f"of 32, 30 draws: total variance {hard['variance_baseline']:.4g} with the moving-"
          f"average baseline (b = {hard['baseline']:.2f}), {hard['variance_zero']:.4g} with "
          f"b = 0 ({hard['variance_zero'] / hard['variance_baseline']:.1f}x)")


if __name__ == "__main__":
    main()
