"""Grounding on harder data: how often captions name absent objects, and where they look.

    python benchmarks/grounding.py [--data data/hard] [--epochs 20] [--scst-epochs 5]
                                   [--attention soft,hard] [--recipes cross_entropy,...]
                                   [--out runs/grounding]

Trains the default captioner with ``train.py`` (the command a user runs) on the synthetic
data's hard style (``python -m captioner.commands.synth --style hard --seed 1``, made in
``--data`` if it is not there: 4,000 training, 200 validation and 200 test images with
occlusion, clutter, textured backgrounds and relations), once per recipe and attention,
and prints the test split's scores (greedy) from each model folder's metrics.json: BLEU-4,
CIDEr-D, object precision and recall, CHAIR_s (captions naming an absent object),
attention correctness against uniform attention, and the training minutes. One JSON line
per run.

Recipes: "cross_entropy" (without boxes: ``--attention-supervision 0``), "supervision"
(``--attention-supervision 1``, Liu et al. 2017 with the instances' boxes: the default
where boxes exist), and self-critical fine-tuning (``--scst``, Rennie et al. 2017) of
those models for ``--scst-epochs``: "scst" (of cross_entropy, without boxes), "both" (of
supervision, supervised), "penalty" (both, and ``--hallucination-penalty 1``). A
fine-tuning row's minutes count its cross-entropy run's too. ``--extra`` adds train.py
options to every run. A run whose folder already holds its test scores is not run again.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = {  # name: (train.py options, the recipe whose model it starts from)
    "cross_entropy": (["--attention-supervision", "0"], None),
    "supervision": (["--attention-supervision", "1.0"], None),
    "scst": (["--scst", "--attention-supervision", "0"], "cross_entropy"),
    "both": (["--scst", "--attention-supervision", "1.0"], "supervision"),
    "penalty": (["--scst", "--attention-supervision", "1.0", "--hallucination-penalty", "1.0"],
                "supervision"),
}


def training_minutes(folder):
    """The minutes of the epochs of the run in ``folder`` (with their validation)."""
    with open(os.path.join(folder, "metrics.json")) as handle:
        return sum(row["seconds"] for row in json.load(handle)["history"]) / 60


def has_test_scores(folder):
    try:
        with open(os.path.join(folder, "metrics.json")) as handle:
            return "test" in json.load(handle)
    except (OSError, ValueError):
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "hard"))
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "grounding"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--scst-epochs", type=int, default=5)
    parser.add_argument("--attention", default="soft")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--extra", default="", help="more train.py options, for every run")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from benchmarks.common import machine
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    if not os.path.isdir(os.path.join(args.data, "annotations")):
        subprocess.run([sys.executable, "-m", "captioner.commands.synth", "--out", args.data,
                        "--seed", "1", "--style", "hard"], check=True, env=env)
    for attention in args.attention.split(","):
        for recipe in args.recipes.split(","):
            options, start = RECIPES[recipe]
            out = os.path.join(args.out, f"{attention}_{recipe}")
            epochs = args.scst_epochs if start else args.epochs
            command = [sys.executable, os.path.join(ROOT, "train.py"), "--coco", args.data,
                       "--out", out, "--epochs", str(epochs), *options, *args.extra.split()]
            if start:
                init = os.path.join(args.out, f"{attention}_{start}")
                if not has_test_scores(init):
                    sys.exit(f"{init} has no trained model: run recipe {start} first")
                command += ["--init", init]
            else:
                command += ["--attention", attention]
            if not has_test_scores(out):
                subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
            minutes = training_minutes(out) + (training_minutes(init) if start else 0.0)
            with open(os.path.join(out, "metrics.json")) as handle:
                test = json.load(handle)["test"]
            print(json.dumps({
                "figure": "test split of the hard synthetic data, greedy",
                "attention": attention, "recipe": recipe, "epochs": epochs,
                "extra": args.extra, "bleu4": round(test["BLEU-4"], 3),
                "cider": round(test["CIDEr"], 3),
                "object_precision": round(test["object_precision"], 3),
                "object_recall": round(test["object_recall"], 3),
                "chair_s": round(test["chair_s"], 3),
                "attention_correctness": round(test["attention_correctness"], 3),
                "uniform": round(test["uniform_baseline"], 3),
                "minutes": round(minutes, 1), "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
