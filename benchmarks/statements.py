"""Where and how many: how often each kind of statement a caption makes is true, with and
without grounded decoding, for the LSTM (soft and hard attention) and the Transformer.

    python -m benchmarks.statements [--data DIR] [--unseen DIR] [--models lstm_soft,...]
        [--epochs lstm_soft=40,lstm_hard=40,transformer=20] [--out runs/statements]
        [--speed]

Trains each model with ``train.py`` (every default but the decoder and attention; boxes,
so attention supervision and the grounding head) on ``--data``: the synthetic hard
style, seed 1, 2,000 training images (``python -m captioner.commands.synth --style hard
--seed 1 --train 2000``), made there if it is not. Then scores each one's greedy captions
(``caption.py --coco DIR --split test --json``) on that data's test split and on
``--unseen``, data nothing was tuned on (the hard style with seed 7, drawn at 160 px, 400
test images), with grounded decoding off (0) and at its default (1): per kind of
statement the share true (``captioner.metrics.statements``: objects, sizes, positions,
relations, counts, backgrounds) and how many were made, the captions whose every
statement is true, CIDEr-D, object precision and recall, and milliseconds per image.
``--speed`` also times plain and grounded decoding per caption at batch 32 (greedy and
beam 5; nothing else should run meanwhile). One JSON line per row, then a table.
A model already trained, or a scoring already written, is not done again.
"""

import argparse
import json
import os
import subprocess
import sys

from benchmarks.common import machine
from benchmarks.grounding import has_test_scores, score, speed, training_minutes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {"lstm_soft": [], "lstm_hard": ["--attention", "hard"],
          "transformer": ["--decoder", "transformer"]}
EPOCHS = "lstm_soft=40,lstm_hard=40,transformer=20"
KINDS = ("object", "size", "position", "relation", "count", "background")
COLUMNS = ((("true_position", "position"), ("true_relation", "relation"),
            ("true_count", "count"), ("true_size", "size"), ("true_background", "backgr."),
            ("all_true", "all true"), ("CIDEr", "CIDEr-D"), ("object_precision", "obj. P"),
            ("object_recall", "obj. R"), ("ms_per_image", "ms/image")))


def make(folder, style_options):
    if not os.path.exists(os.path.join(folder, "annotations")):
        subprocess.run([sys.executable, "-m", "captioner.commands.synth", "--out", folder,
                        *style_options], check=True, stdout=subprocess.DEVNULL)


def table(rows):
    header = ["model", "data", "grounded"] + [label for _, label in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["model"], row["data"], f"{row['grounded']:g}"]
        for key, _ in COLUMNS:
            value = row.get(key)
            made = row.get("statements_" + key[5:]) if key.startswith("true_") else None
            cells.append("–" if value is None or value != value else
                         f"{value:.1f}" if key == "ms_per_image" else
                         f"{value:.2f} ({made})" if made is not None else f"{value:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "hard2k"))
    parser.add_argument("--unseen", default=os.path.join(ROOT, "data", "unseen"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", default=EPOCHS, help="per model, NAME=EPOCHS,...")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "statements"))
    parser.add_argument("--speed", action="store_true")
    args = parser.parse_args()
    make(args.data, ["--style", "hard", "--seed", "1", "--train", "2000"])
    make(args.unseen, ["--style", "hard", "--seed", "7", "--size", "160", "160",
                       "--train", "0", "--val", "0", "--test", "400"])
    epochs = dict(item.split("=") for item in args.epochs.split(","))
    machine_name, rows = machine(), []
    for name in args.models.split(","):
        out = os.path.join(args.out, name)
        if not has_test_scores(out):
            subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "--coco",
                            args.data, "--out", out, "--epochs", epochs.get(name, "40"),
                            *MODELS[name]], check=True, stdout=subprocess.DEVNULL)
        minutes = round(training_minutes(out), 1)
        if args.speed:
            print(json.dumps({"figure": f"decoding ms of {name}, plain (0) and grounded (1)",
                              **speed(out, os.environ), "machine": machine_name}), flush=True)
        for data, label in ((args.data, "hard"), (args.unseen, "unseen")):
            for weight in (0.0, 1.0):
                scores = score(out, data, weight, os.environ, name=label)
                row = {"figure": "greedy captions' statements, test split", "model": name,
                       "data": label, "grounded": weight, "epochs": int(epochs.get(name, 40)),
                       "minutes": minutes, "machine": machine_name,
                       **{key: scores[key] for key in scores
                          if key.startswith(("true_", "statements_")) or key in dict(COLUMNS)}}
                print(json.dumps(row), flush=True)
                rows.append(row)
    print(table(rows))


if __name__ == "__main__":
    main()
