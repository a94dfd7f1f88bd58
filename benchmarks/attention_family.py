"""The attention family side by side: the captioner trained with each --score.

    python -m benchmarks.attention_family [--epochs 12]
        [--out runs/attention_family] [--only NAME ...] [--no-timing] [--timing-only]

Every member gets the same budget: the default captioner (soft attention, the small CNN
at 96 px, a 12x12 grid), the same data, seed, epochs and schedule; only --score differs.
Per member it reports the parameters of the whole captioner and of its attention
(for dot and scaled_dot that is the projection of the LSTM state to the annotations'
size), milliseconds per training step (batch 32, the median of 20 steps after the first
has compiled) and per caption (greedy decoding of 32 test images, the median of 5 runs,
divided by 32), and the test split's BLEU-4, CIDEr-D and attention correctness (best epoch
by validation CIDEr-D, greedy).

Training and scoring are the recipe ``benchmarks/recipes/attention_family.json``, run by
``benchmarks.experiment``; the timing reaches inside the trained models (their attention
layers, one training step), which is what its internal imports are for. Each member's
results are written to OUT/NAME/scores.json and bench_timing.json, so the members can be trained
by separate processes, one per member (--only NAME --measure-alone: each waits for all to
finish training and compile, then they time one at a time), or timed afterwards by one process
(--timing-only); the table is printed from whatever OUT holds.
"""

import argparse
import json
import os
import time

from benchmarks import experiment
from benchmarks.common import machine
from captioner.cli import import_keras_quietly


def scores():
    from captioner.config import attention_scores
    return attention_scores()


def median_ms(run, repeats):
    import numpy as np
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def wait_for_the_others(out, seconds=900):
    """A barrier for processes that train in parallel, one per member, and then time one
    at a time: blocks until every member has compiled its timing run (its .ready mark)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if all(os.path.isfile(os.path.join(out, n, ".ready")) for n in scores()):
            return
        time.sleep(2)


def time_member(name, args, train, test):
    import keras

    from captioner import load_model
    from captioner.data.dataset import CaptionBatches
    from captioner.io import write_json

    out = os.path.join(args.out, name)
    saved = load_model(out)
    decode = lambda images: saved.decode({"images": images})  # noqa: E731
    model, vocabulary = saved.model, saved.vocabulary
    size = model.model_config.encoder.image_size
    x, y, w = CaptionBatches(train[:32], vocabulary, size, 32,
                             model.model_config.max_length, shuffle=False)[0]
    images = CaptionBatches(test[:32], vocabulary, size, 32,
                            model.model_config.max_length, shuffle=False)[0][0]["images"]
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    model.train_on_batch(x, y, sample_weight=w)  # compiles
    decode(images)
    lock = None
    if args.measure_alone:
        import fcntl
        open(os.path.join(out, ".ready"), "w").close()
        wait_for_the_others(args.out)
        lock = open(os.path.join(args.out, ".timing.lock"), "w")
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process measures at a time
    step_ms = median_ms(lambda: model.train_on_batch(x, y, sample_weight=w), 20)
    caption_ms = median_ms(lambda: decode(images), 5) / 32
    if lock is not None:
        lock.close()
    attention = model.decoder.attention.count_params()
    if hasattr(model.decoder, "query_to_keys"):
        attention += model.decoder.query_to_keys.count_params()
    write_json(os.path.join(out, "bench_timing.json"),
               {"params": model.count_params(), "attention_params": attention,
                "step_ms": step_ms, "caption_ms": caption_ms,
                "machine": machine(), "backend": keras.backend.backend()})


def print_table(out, recipe):
    rows = []
    for name in scores():
        folder = os.path.join(out, name)
        scores_path = os.path.join(folder, "scores.json")
        if not os.path.isfile(scores_path):
            continue
        with open(scores_path) as f:
            row = json.load(f)
        timing_path = os.path.join(folder, "bench_timing.json")
        if os.path.isfile(timing_path):
            with open(timing_path) as f:
                row.update(json.load(f))
        rows.append((name, row))
    if not rows:
        print(f"nothing measured in {out} yet")
        return
    first, options = rows[0][1], recipe["options"]
    print(f"\nsynthetic data, {options['epochs']} epochs each, seed {options['seed']}, soft "
          f"attention, lambda 0.1, local D = {options['window']:g} "
          f"(truncated: {options['window_truncate']}); "
          f"test split, greedy; timing: {first.get('machine', '-')}, "
          f"{first.get('backend', '-')}\n")
    print("| score | parameters (attention) | ms / training step | ms / caption | BLEU-4 | "
          "CIDEr-D | attention correctness (uniform) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        timing = (f"{r['params']:,} ({r['attention_params']:,}) | {r['step_ms']:.1f} | "
                  f"{r['caption_ms']:.2f}" if "params" in r else "- | - | -")
        print(f"| {name} | {timing} | {r['BLEU-4']:.3f} | {r['CIDEr']:.3f} | "
              f"{r['attention_correctness']:.3f} ({r['uniform_baseline']:.3f}) |")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    import_keras_quietly()  # the scores' names come from the attention registry
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(root, "runs", "attention_family"))
    parser.add_argument("--only", nargs="+", choices=scores(), default=list(scores()))
    parser.add_argument("--no-timing", action="store_true", help="train and score only")
    parser.add_argument("--timing-only", action="store_true",
                        help="time the members already trained in --out")
    parser.add_argument("--measure-alone", action="store_true",
                        help="for parallel runs, one per member: time after every member "
                             "has trained and compiled, one process at a time")
    parser.add_argument("--window", type=float, default=3.0, help="D of the local score")
    parser.add_argument("--window-truncate", action="store_true",
                        help="the local score's Luong cut-off (train.py --window-truncate)")
    args = parser.parse_args()

    from captioner.data.coco import load_coco_split

    for name in args.only:  # a fresh barrier
        mark = os.path.join(args.out, name, ".ready")
        if os.path.isfile(mark):
            os.remove(mark)
    recipe = experiment.load_recipe("attention_family")
    recipe["name"] = "attention_family"
    recipe["options"].update(epochs=args.epochs, seed=args.seed, window=args.window,
                             window_truncate=args.window_truncate)
    data = experiment.data_folder(recipe)
    if not args.timing_only:
        experiment.run(recipe, args.out, args.only)
    train = load_coco_split(data, "train")[0]
    test = load_coco_split(data, "test")[0]
    if not args.no_timing:
        for name in args.only:
            if os.path.isfile(os.path.join(args.out, name, "scores.json")):
                time_member(name, args, train, test)
    print_table(args.out, recipe)


if __name__ == "__main__":
    main()
