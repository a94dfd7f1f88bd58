"""Grounding on harder data: how often captions name absent objects, of which kind, and
what the grounding head and grounded decoding change.

    python -m benchmarks.grounding [--data data/hard,data/simple2] [--epochs 20]
        [--scst-epochs 5] [--attention soft,hard] [--recipes supervision,head,...]
        [--grounded 0,1,3] [--out runs/grounding]

Trains the default captioner with ``train.py`` (the command a user runs) on each data set
of ``--data``: the synthetic data's hard style (``python -m captioner.commands.synth
--style hard --seed 1``: 4,000 training, 200 validation and 200 test images with
occlusion, clutter, textured backgrounds and relations) and, to check that nothing was
tuned on it, the simple style with another seed (``--style simple --seed 2``); each is
made in its folder if it is not there. Once per recipe and attention; then every model is
scored on its test split by ``caption.py --coco DATA --split test --json`` (greedy), once
per weight of ``--grounded`` for a model with a grounding head (0: plain decoding): BLEU-4,
CIDEr-D, object precision and recall, CHAIR_s, the absent mentions by kind (share of all
mentions: mis-paired, wrong attribute, wrong category, invented; ``captioner.metrics
.grounding``), how often the head's reading agrees with the object word written (over all
of them, and over the absent ones), attention correctness against uniform attention,
milliseconds per image and the training minutes. One JSON line per row, then a table.
``--speed`` also times plain and grounded decoding of each model with a head (one image
greedy; per caption at batch 32, greedy and beam 5).

Recipes: "cross_entropy" (without boxes: ``--attention-supervision 0 --grounding 0``),
"supervision" (``--attention-supervision 1 --grounding 0``, Liu et al. 2017 with the
instances' boxes: the default before the grounding head), "head" (supervision and the
grounding head, ``--grounding 1``: the default where boxes exist), "head_mentions" (head,
and ``--supervised-words mentions``: the colour word looks at its shape's box too), and
self-critical
fine-tuning (``--scst``, Rennie et al. 2017) of those models for ``--scst-epochs``: "scst"
(of cross_entropy, without boxes), "both" (of supervision, supervised), "penalty" (both,
and ``--hallucination-penalty 1``), "head_scst_mispairing" (of head, with
``--mispairing-penalty 1``). A fine-tuning row's minutes count its cross-entropy
run's too. ``--extra`` adds train.py options to every run. A run whose folder already
holds its test scores is not run again, nor a scoring already written.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = {  # name: (train.py options, the recipe whose model it starts from)
    "cross_entropy": (["--attention-supervision", "0", "--grounding", "0"], None),
    "supervision": (["--attention-supervision", "1.0", "--grounding", "0"], None),
    "head": (["--attention-supervision", "1.0", "--grounding", "1.0"], None),
    "head_mentions": (["--attention-supervision", "1.0", "--grounding", "1.0",
                       "--supervised-words", "mentions"], None),
    "scst": (["--scst", "--attention-supervision", "0"], "cross_entropy"),
    "both": (["--scst", "--attention-supervision", "1.0"], "supervision"),
    "penalty": (["--scst", "--attention-supervision", "1.0", "--hallucination-penalty", "1.0"],
                "supervision"),
    "head_scst_mispairing": (["--scst", "--attention-supervision", "1.0",
                              "--mispairing-penalty", "1.0"], "head"),
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


STYLES = {"hard": ("hard", 1), "simple2": ("simple", 2)}  # folder name: (style, seed)
COLUMNS = (("BLEU-4", "BLEU-4"), ("CIDEr", "CIDEr-D"), ("object_precision", "obj. P"),
           ("object_recall", "obj. R"), ("chair_s", "CHAIR_s"),
           ("absent_mispaired", "mis-paired"), ("absent_wrong_attribute", "wrong attr."),
           ("absent_wrong_category", "wrong cat."), ("absent_invented", "invented"),
           ("head_agreement", "head agrees"), ("head_agreement_absent", "on absent"),
           ("attention_correctness", "att. corr."), ("ms_per_image", "ms/image"))


def has_head(folder):
    with open(os.path.join(folder, "config.json")) as handle:
        config = json.load(handle)
    return bool(config["model"].get("grounding", {}).get("categories"))


def score(folder, data, weight, env, name=None):
    """The test split's scores of the model in ``folder`` with grounded decoding at
    ``weight`` (``caption.py --coco``), kept in the folder (``name``: which data, in the
    file names, where a model is scored on several)."""
    tag = f"{name}_{weight:g}" if name else f"{weight:g}"
    path = os.path.join(folder, f"bench_grounded_{tag}.json")
    if not os.path.exists(path):
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "caption.py"), "--coco", data, "--split", "test",
             "--model", folder, "--json", "--grounded", str(weight),
             "--out", os.path.join(folder, f"evaluation_{tag}")],
            capture_output=True, text=True, env=env)
        if result.returncode:
            sys.exit(result.stderr[-2000:])
        with open(path + ".tmp", "w") as handle:
            json.dump(json.loads(result.stdout)["scores"], handle)
        os.replace(path + ".tmp", path)
    with open(path) as handle:
        return json.load(handle)


SPEED = r"""
import json, sys, time
import numpy as np
from captioner import SearchConfig, load_model
from benchmarks.common import best_ms as best

saved = load_model(sys.argv[1])
model, vocabulary = saved.model, saved.vocabulary
size, longest = model.model_config.encoder.image_size, model.model_config.max_length
images = np.random.default_rng(0).integers(0, 256, (32, size, size, 3)).astype("uint8")


figures = {}
for weight in (0.0, 1.0):
    def search(beam=1):
        return saved.search(SearchConfig(beam=beam, grounded=weight))
    figures[f"{weight:g}"] = {
        "greedy_ms_one_image": best(search(), {"images": images[:1]}),
        "greedy_ms_per_caption_32": best(search(), {"images": images}) / 32,
        "beam5_ms_per_caption_32": best(search(5), {"images": images}) / 32}
print(json.dumps(figures))
"""


def speed(folder, env):
    """Milliseconds of plain and grounded decoding (weight 1) of the model in ``folder``:
    one image greedy, and per caption at batch 32 greedy and beam 5 (compiled, warm,
    best of 5); nothing else should run meanwhile."""
    path = os.path.join(folder, "bench_speed.json")
    if not os.path.exists(path):
        result = subprocess.run([sys.executable, "-c", SPEED, folder], capture_output=True,
                                text=True, env=env)
        if result.returncode:
            sys.exit(result.stderr[-2000:])
        with open(path + ".tmp", "w") as handle:
            handle.write(result.stdout.strip().splitlines()[-1])
        os.replace(path + ".tmp", path)
    with open(path) as handle:
        return json.load(handle)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=",".join(os.path.join(ROOT, "data", name)
                                                   for name in STYLES),
                        help="data folders; one named after a STYLES key is made if missing")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "grounding"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--scst-epochs", type=int, default=5)
    parser.add_argument("--attention", default="soft")
    parser.add_argument("--recipes", default="supervision,head")
    parser.add_argument("--grounded", default="0,1,3",
                        help="grounded decoding weights to score a model with a head at")
    parser.add_argument("--extra", default="", help="more train.py options, for every run")
    parser.add_argument("--speed", action="store_true",
                        help="also time plain and grounded decoding of each model with a head")
    args = parser.parse_args()
    from benchmarks.common import machine
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    rows = []
    for data in args.data.split(","):
        name = os.path.basename(os.path.normpath(data))
        if not os.path.isdir(os.path.join(data, "annotations")):
            style, seed = STYLES[name]
            subprocess.run([sys.executable, "-m", "captioner.commands.synth", "--out", data,
                            "--seed", str(seed), "--style", style], check=True, env=env)
        for attention in args.attention.split(","):
            for recipe in args.recipes.split(","):
                rows += run(args, env, data, name, attention, recipe, machine())
    print("| data, attention, recipe, grounded decoding | " +
          " | ".join(label for _, label in COLUMNS) + " | minutes |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for row in rows:
        cells = [("" if key not in row else f"{row[key]:.1f}" if key == "ms_per_image"
                  else f"{row[key]:.3f}") for key, _ in COLUMNS]
        print(f"| {row['data']}, {row['attention']}, {row['recipe']}, "
              f"{row['grounded']:g} | " + " | ".join(cells) + f" | {row['minutes']:.1f} |")


def run(args, env, data, name, attention, recipe, machine):
    """Trains (unless done) and scores one recipe; its rows."""
    options, start = RECIPES[recipe]
    out = os.path.join(args.out, name, f"{attention}_{recipe}")
    epochs = args.scst_epochs if start else args.epochs
    command = [sys.executable, os.path.join(ROOT, "train.py"), "--coco", data,
               "--out", out, "--epochs", str(epochs), *options, *args.extra.split()]
    if start:
        init = os.path.join(args.out, name, f"{attention}_{start}")
        if not has_test_scores(init):
            sys.exit(f"{init} has no trained model: run recipe {start} first")
        command += ["--init", init]
    else:
        command += ["--attention", attention]
    if not has_test_scores(out):
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    minutes = training_minutes(out) + (training_minutes(init) if start else 0.0)
    weights = [float(w) for w in args.grounded.split(",")] if has_head(out) else [0.0]
    if args.speed and has_head(out):
        print(json.dumps({"figure": f"decoding ms of {name} {attention} {recipe}, plain (0) "
                          "and grounded (1)", **speed(out, env), "machine": machine}),
              flush=True)
    rows = []
    for weight in weights:
        test = score(out, data, weight, env)
        row = {"figure": f"test split of {name}, greedy", "data": name,
               "attention": attention, "recipe": recipe, "grounded": weight,
               "epochs": epochs, "extra": args.extra, "minutes": round(minutes, 1),
               "machine": machine,
               **{key: round(test[key], 4) for key, _ in COLUMNS if key in test}}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
