"""The Recurrent Attention Model on translated and cluttered digits, by number of glimpses,
beside a convolutional network of about its size that sees the whole image.

    python -m benchmarks.ram_glimpses [--digit-source mnist] [--epochs 200] [--out runs/ram]
        [--only translated:6 cluttered:conv ...]

Data: the bundled digits (train.py --digit-source) placed at random in a 60x60 canvas
("translated"), and the same with 4 fragments of other digits ("cluttered"); 80 % of the
digits train (new placements every epoch), 10 % validate, 10 % test (fixed placements).
Each RAM is trained by train.py's RAMTrainer (12x12 patches, 3 scales, sigma 0.1; the
best epoch by validation error is tested); the conv net (2 conv layers, 5x5, stride 2, max
pooling, 128 hidden units) by plain fit() for the same epochs. Prints test error (%) and
the cost per image (ms, batch of 64 test canvases, median of 5 after a warm-up), and how often the
RAM's
glimpses 2..N are centred on the digit (inside the box of its ink; chance is the box's share
of the canvas), the classifier's counterpart of the captioner's attention correctness.
Each run's result is written to OUT/RUN/bench.json, so runs can be split across processes
(--only) and the table printed from whatever OUT holds (--table); --retime re-measures the
cost of every run in OUT one at a time, for figures not disturbed by parallel runs;
--figure translated:6 draws the glimpse paths of the first four test canvases.

Internal imports: the RAM's trainer, its conv-net baseline and the glimpse metrics,
which it compares run by run.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

from benchmarks.common import machine
from captioner.cli import import_keras_quietly
from captioner.config import RAM_EPOCHS, RAMConfig, field_choices

REWARDS = next(field_choices(f) for f in dataclasses.fields(RAMConfig) if f.name == "reward")

VARIANTS = {"translated": 0, "cluttered": 4}
MODELS = ("1", "4", "6", "8", "conv")


def ms_per_image(predict, images):
    import numpy as np
    predict(images)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        predict(images)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)) / len(images)


def retime(out):
    """Re-measures ms / image of every run in ``out`` (in this process, nothing else
    running) and updates its bench.json. The cost of a forward pass does not depend on the
    weights, so each model is rebuilt untrained; the images are the same 64 test canvases."""
    from captioner.config import RAMConfig
    from captioner.data.classification import digit_splits, load_digits
    from captioner.io import write_json
    from captioner.models.ram import conv_baseline, create_ram
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name, "bench.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            row = json.load(f)
        sample = digit_splits(*load_digits(row["digits"]),
                              clutter=VARIANTS[row["variant"]])[2].images[:64]
        model = conv_baseline(60, 60, 1, 10) if row["model"] == "conv" \
            else create_ram(RAMConfig(glimpses=int(row["model"])), seed=0)
        row["ms_per_image"] = ms_per_image(model.predict_on_batch, sample)
        row["timed_alone"] = True
        write_json(path, row)
        print(f"{name}: {row['ms_per_image']:.3f} ms / image", file=sys.stderr)


def glimpse_montage(out, run, count=4):
    """OUT/RUN/glimpses.png: the glimpse figures of the first ``count`` test canvases (not
    chosen: the first ones), side by side at half size."""
    import tempfile

    import keras
    from PIL import Image

    from captioner import load_model
    from captioner.data.classification import digit_splits, load_digits
    from captioner.io import atomic_path
    from captioner.render import save_glimpse_figure
    folder = os.path.join(out, run)
    with open(os.path.join(folder, "bench.json")) as f:
        row = json.load(f)
    saved = load_model(folder)
    model, classes = saved.model, saved.classes
    test = digit_splits(*load_digits(row["digits"]), clutter=VARIANTS[row["variant"]])[2]
    images = test.images[:count]
    outputs = {k: keras.ops.convert_to_numpy(v) for k, v in model.predict_on_batch(images).items()}
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(outputs["logits"]))
    with tempfile.TemporaryDirectory() as scratch:
        panels = []
        for i, image in enumerate(images):
            answer = int(probabilities[i].argmax())
            path = os.path.join(scratch, f"{i}.png")
            save_glimpse_figure(path, image, outputs["locations"][i], outputs["patches"][i],
                                f"{classes[answer]} ({probabilities[i, answer]:.2f})")
            panels.append(Image.open(path).convert("RGB"))
        montage = Image.new("RGB", (sum(p.width for p in panels), max(p.height for p in panels)),
                            "white")
        left = 0
        for panel in panels:
            montage.paste(panel, (left, 0))
            left += panel.width
        target = os.path.join(folder, "glimpses.png")
        with atomic_path(target) as temporary:
            montage.resize((montage.width // 2, montage.height // 2), Image.LANCZOS).save(
                temporary)
    print(f"wrote {target} (true classes {test.labels[:count].tolist()})", file=sys.stderr)


def run_one(variant, model_name, args, digits, labels):
    import keras
    import numpy as np

    from captioner import load_model
    from captioner.config import RAMConfig, TrainConfig
    from captioner.data.classification import digit_splits
    from captioner.io import write_json
    from captioner.metrics.glimpses import glimpses_on_target
    from captioner.models.ram import conv_baseline
    from captioner.training.ram import RAMTrainer, classification_error

    out = os.path.join(args.out, f"{variant}_{model_name}")
    train_batches, val_batches, test_batches = digit_splits(
        digits, labels, clutter=VARIANTS[variant], batch_size=args.batch_size, seed=args.seed)
    sample = test_batches.images[:64]
    started = time.time()
    if model_name == "conv":
        keras.utils.set_random_seed(args.seed)
        model = conv_baseline(60, 60, 1, 10)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        for epoch in range(args.epochs):
            train_batches.set_epoch(epoch)
            model.fit(train_batches, epochs=1, verbose=0, shuffle=False)
        predictions = np.concatenate([model.predict_on_batch(test_batches[i][0]).argmax(-1)
                                      for i in range(len(test_batches))])
        error = float((predictions != test_batches.labels).mean())
        cost = ms_per_image(model.predict_on_batch, sample)
        params = model.count_params()
        on_target = None
    else:
        config = RAMConfig(glimpses=int(model_name), reward=args.reward, seed=args.seed)
        config.height, config.width, config.channels = train_batches.input_shape
        from captioner.training.checkpoint import Checkpoints
        RAMTrainer(train_batches, val_batches, out, config,
                   TrainConfig.of(epochs=args.epochs, batch_size=args.batch_size,
                               learning_rate=args.learning_rate, seed=args.seed),
                   [str(k) for k in range(10)], f"benchmark {variant}").run(
                       resume=Checkpoints(os.path.join(out, "checkpoint")).exists(),
                       progress=False)
        with open(os.path.join(out, "metrics.json")) as f:  # training time, resumes included
            started = time.time() - sum(row["seconds"] for row in json.load(f)["history"])
        model = load_model(out).model
        error = classification_error(model, test_batches)
        locations = np.concatenate([
            keras.ops.convert_to_numpy(model.predict_on_batch(test_batches[i][0])["locations"])
            for i in range(len(test_batches))])
        hits, chance = glimpses_on_target(locations, test_batches.boxes, 60, 60)
        on_target = {"per_glimpse": hits.tolist(), "chance": chance}
        cost = ms_per_image(model.predict_on_batch, sample)
        params = model.count_params()
    write_json(os.path.join(out, "bench.json"),
               {"variant": variant, "model": model_name, "test_error": error,
                "on_target": on_target,
                "ms_per_image": cost, "params": params, "epochs": args.epochs,
                "seconds": time.time() - started, "digits": args.digit_source,
                "machine": machine(), "backend": keras.backend.backend()})


def print_table(out):
    rows = {}
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        path = os.path.join(out, name, "bench.json")
        if os.path.isfile(path):
            with open(path) as f:
                row = json.load(f)
            rows[(row["variant"], row["model"])] = row
    if not rows:
        print(f"nothing measured in {out} yet")
        return
    first = next(iter(rows.values()))
    print(f"\n{first['digits']} digits in a 60x60 canvas, {first['epochs']} epochs; test split; "
          f"{first['machine']}, {first['backend']}\n")
    print("| model | translated: test error | on the digit | cluttered: test error | on the digit "
          "| parameters | ms / image |")
    print("|---|---|---|---|---|---|---|")
    for model in MODELS:
        cells = [rows.get((variant, model)) for variant in VARIANTS]
        if not any(cells):
            continue
        known = next(c for c in cells if c)
        name = "conv net (whole image)" if model == "conv" \
            else f"RAM, {model} glimpse{'' if model == '1' else 's'}"
        errors = " | ".join(f"{100 * c['test_error']:.1f} % | {on_target_cell(c)}" if c else "- | -"
                            for c in cells)
        print(f"| {name} | {errors} | {known['params']:,} | {known['ms_per_image']:.2f} |")
    print("\non the digit: share of the policy's glimpses (2..N) centred inside the digit's ink "
          "box (chance: a uniform location)")


def on_target_cell(row):
    """'71 % (10 %)': glimpses 2..N centred on the digit, and chance; '-' for the conv net
    and single glimpses (the centre, chosen by nobody)."""
    hits = (row.get("on_target") or {}).get("per_glimpse", [])[1:]
    if not hits:
        return "-"
    return f"{100 * sum(hits) / len(hits):.0f} % ({100 * row['on_target']['chance']:.0f} %)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--digit-source", choices=("mnist", "sklearn"), default="mnist")
    parser.add_argument("--epochs", type=int, default=RAM_EPOCHS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reward", choices=REWARDS, default="correct",
                        help="the RAM's location reward (train.py --reward)")
    parser.add_argument("--out", default=os.path.join(root, "runs", "ram"))
    parser.add_argument("--only", nargs="+", default=None, metavar="VARIANT:MODEL",
                        help="e.g. translated:6 cluttered:conv (default: all)")
    parser.add_argument("--table", action="store_true", help="only print the table")
    parser.add_argument("--figure", metavar="VARIANT:MODEL",
                        help="write OUT/VARIANT_MODEL/glimpses.png: the glimpse paths of the "
                             "first four test canvases")
    parser.add_argument("--retime", action="store_true",
                        help="re-measure ms / image of the runs in --out, one at a time")
    args = parser.parse_args()
    runs = [(v, m) for v in VARIANTS for m in MODELS]
    if args.only:
        runs = [tuple(item.split(":", 1)) for item in args.only]
        for variant, model in runs:
            if variant not in VARIANTS or model not in MODELS:
                parser.error(f"unknown run {variant}:{model}")
    if args.figure:
        import_keras_quietly()
        glimpse_montage(args.out, args.figure.replace(":", "_"))
        return
    if args.retime:
        import_keras_quietly()
        retime(args.out)
    elif not args.table:
        import_keras_quietly()
        from captioner.data.classification import load_digits
        digits, labels = load_digits(args.digit_source)
        for variant, model in runs:
            run_one(variant, model, args, digits, labels)
    print_table(args.out)


if __name__ == "__main__":
    main()
