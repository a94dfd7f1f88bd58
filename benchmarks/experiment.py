"""Research experiments as recipes: data, not code. A recipe (``benchmarks/recipes/*.json``)
names the data, the ``captioner train`` options every member shares and each member's
own; this runner trains each member with ``captioner.train`` and scores its best model on
the test split with ``ImageCaptioner.evaluate``, then prints one Markdown table.

    python -m benchmarks.experiment soft_vs_hard [--only hard] [--out DIR] [--set epochs=4]

A recipe::

    {"title": "...", "data": "data/synthetic",      # a COCO-layout folder (made by
                                                     #  `captioner synth` where missing)
     "synth": ["--style", "simple"],                 # its options, for that
     "options": {"epochs": 20, "doubly_stochastic": 0.1},   # every member's
     "members": {"soft": {"attention": "soft"}, "hard": {"attention": "hard"}},
     "search": {"beam": 1}, "columns": {"BLEU-4": "BLEU-4", "CIDEr-D": "CIDEr"}}

Options are the fields of ``captioner.config``'s sections, by name (``epochs``, ``score``,
``attention_supervision``): the command line's options with ``_`` for ``-``. A member
already trained in OUT/NAME is resumed (or only scored); its scores are kept in
OUT/NAME/scores.json.
"""

import argparse
import dataclasses
import json
import os
import platform
import sys

from benchmarks.common import ROOT

RECIPES = os.path.join(ROOT, "benchmarks", "recipes")


def load_recipe(name):
    """The recipe ``name`` (benchmarks/recipes/NAME.json) or a path to one."""
    path = name if name.endswith(".json") else os.path.join(RECIPES, f"{name}.json")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def configs(options):
    """(ModelConfig, TrainConfig) of flat options (field names of the config sections)."""
    from captioner.config import (
        DECODERS,
        EncoderConfig,
        LossConfig,
        ModelConfig,
        train_config_for,
    )
    options = dict(options)
    kind = options.pop("decoder", "lstm")

    def take(section):
        names = {field.name for field in dataclasses.fields(section)}
        return {key: options.pop(key) for key in list(options) if key in names}
    decoder = {key: value for key, value in take(DECODERS[kind]).items() if key != "kind"}
    for other in DECODERS.values():  # a field of another decoder kind is a mistake
        if any(key in {field.name for field in dataclasses.fields(other)} for key in options):
            raise SystemExit(f"not an option of the {kind} decoder: {sorted(options)}")
    model = ModelConfig(encoder=EncoderConfig(**take(EncoderConfig)),
                        decoder=DECODERS[kind](kind=kind, **decoder),
                        loss=LossConfig(**take(LossConfig)))
    return model, train_config_for("caption", **options)


def data_folder(recipe):
    """The recipe's data folder, made with ``captioner synth`` where it is missing."""
    folder = os.path.join(ROOT, recipe["data"])
    if not os.path.isdir(folder):
        from captioner.commands.synth import main as synth
        synth(["--out", folder, *map(str, recipe.get("synth", []))])
    return folder


def run_member(recipe, name, out, data):
    """Trains member ``name`` into OUT/NAME (resuming what is there) and scores its best
    model on the test split; returns the scores (kept in OUT/NAME/scores.json)."""
    import captioner
    from captioner.config import SearchConfig
    folder = os.path.join(out, name)
    options = {**recipe.get("options", {}), **recipe["members"][name]}
    model_config, train_config = configs(options)
    captioner.train(folder, coco=data, model_config=model_config, train_config=train_config,
                    resume=True, progress=False,
                    command=f"python -m benchmarks.experiment {recipe['name']} --only {name}")
    task = captioner.load_model(folder)
    evaluation = task.evaluate(coco=data, split="test", search=SearchConfig(
        **recipe.get("search", {})), metrics=tuple(recipe.get("metrics", ("BLEU", "CIDEr"))))
    with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as handle:
        history = json.load(handle)["history"]
    scores = {**evaluation.scores, "best_epoch": max(
        history, key=lambda row: row.get("val_cider", -1))["epoch"],
        "epoch_seconds": sorted(row["train_seconds"] for row in history)[len(history) // 2]}
    with open(os.path.join(folder, "scores.json"), "w", encoding="utf-8") as handle:
        json.dump(scores, handle, indent=1)
    return scores


def run(recipe, out, only=None):
    """{member: scores} of the recipe's members (``only``: these)."""
    data = data_folder(recipe)
    return {name: run_member(recipe, name, out, data) for name in recipe["members"]
            if not only or name in only}


def table(recipe, rows):
    """The Markdown table of ``rows`` ({member: scores}) with the recipe's columns."""
    import keras
    columns = recipe.get("columns", {"BLEU-4": "BLEU-4", "CIDEr-D": "CIDEr"})
    lines = [f"{recipe['title']}; Keras {keras.__version__} on {keras.backend.backend()}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "",
             "| " + " | ".join([recipe.get("member", "member"), *columns]) + " |",
             "|" + "---|" * (len(columns) + 1)]
    for name, scores in rows.items():
        cells = [f"{scores[key]:.3f}" if isinstance(scores.get(key), float) else
                 str(scores.get(key, "-")) for key in columns.values()]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def parse_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="a recipe's name (benchmarks/recipes/) or its file")
    parser.add_argument("--only", nargs="+", help="these members")
    parser.add_argument("--out", help="where the members train (default: runs/RECIPE)")
    parser.add_argument("--set", nargs="+", default=[], metavar="OPTION=VALUE",
                        help="every member's option set anew (epochs=4, for a quick run)")
    args = parser.parse_args(argv)
    from captioner.cli import import_keras_quietly
    import_keras_quietly()
    recipe = load_recipe(args.recipe)
    recipe.setdefault("name", os.path.splitext(os.path.basename(args.recipe))[0])
    for item in args.set:
        key, _, value = item.partition("=")
        recipe.setdefault("options", {})[key.replace("-", "_")] = parse_value(value)
    out = args.out or os.path.join(ROOT, "runs", recipe["name"])
    rows = run(recipe, out, args.only)
    print(table(recipe, rows))
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
