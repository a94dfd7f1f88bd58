"""LSTM soft attention against the Transformer decoder, at equal wall-clock time.

    python -m benchmarks.transformer [--data data/hard] [--minutes 4.5] [--out runs/transformer]
        [--only NAME,...] [--phase train,maps,speed] [--backend tensorflow]

Each member is ``train.py --coco DATA`` with every default on (attention supervision from
the boxes, the small CNN at 96 px, batch 32, cosine schedule) and its decoder options;
the members get the same training time, not the same epochs: a one-epoch pilot run of
each measures its epoch, and the real run gets the epochs that fill ``--minutes``
(rounded; the table gives the minutes it took). Data: the synthetic hard style
(``python -m captioner.commands.synth --style hard --seed 1``, made in ``--data`` if it is
not there).

Phases (each writes OUT/NAME/bench_*.json; the table is printed from what OUT holds):
- pilot: every member's pilot epoch, one after the other (nothing else should run then:
  they set the budgets).
- train: the runs; the test split's scores (greedy) from metrics.json: BLEU-4, CIDEr-D,
  object precision, CHAIR_s, attention correctness (uniform beside it).
- maps: for a Transformer, attention correctness of the test captions' maps under each
  reduction of its cross-attention (the mean over heads of the last layer, of all layers,
  of the first) and of the best single head: which map to show and supervise.
- speed: one training step at batch 32 (``benchmarks/train_speed.py``'s child with this
  decoder: ms per step, so captions/s, XLA's FLOP count, share of the CPU's fp32 peak;
  the CNN trained with the decoder, as train.py does by default), one-image greedy
  latency, beam-5 ms per caption at batch 32, and greedy at the maximum length (no <end>)
  with the cache and recomputing the prefix, batch 32.

Internal imports: the compiled search and the attention maps' reduction, whose speed
and maps it compares; training and captioning go through the commands.
"""

import argparse
import json
import os
import subprocess
import sys

from benchmarks.common import ROOT, machine

TRANSFORMER = ["--decoder", "transformer"]
MEMBERS = {  # name: train.py's decoder options
    "lstm": [],
    "transformer-1": TRANSFORMER + ["--layers", "1"],
    "transformer-2": TRANSFORMER + ["--layers", "2"],
    "transformer-3": TRANSFORMER + ["--layers", "3"],
    "transformer-2-grid": TRANSFORMER + ["--layers", "2", "--encoder-layers", "2"],
    "transformer-2-unsupervised": TRANSFORMER + ["--layers", "2",
                                                 "--attention-supervision", "0"],
    "transformer-2-all-layers": TRANSFORMER + ["--layers", "2", "--attention-map", "all_layers"],
}


def read(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write(path, value):
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1)
    os.replace(path + ".tmp", path)


def command(name, args):
    return [sys.executable, os.path.join(ROOT, "train.py"), "--coco", args.data,
            "--no-progress", *MEMBERS[name], *args.extra]


def pilot(name, args, env):
    """One epoch, to measure the member's epoch (training and validation)."""
    folder = os.path.join(args.out, name, "pilot")
    if not os.path.exists(os.path.join(folder, "metrics.json")):
        subprocess.run(command(name, args) + ["--out", folder, "--epochs", "1",
                                              "--test-split", "none"], check=True, env=env)


def train(name, args, env):
    """The run with the epochs that fill the budget at the pilot's epoch time."""
    out = os.path.join(args.out, name)
    result = os.path.join(out, "bench_train.json")
    if os.path.exists(result):
        return
    pilot(name, args, env)
    epoch = read(os.path.join(out, "pilot", "metrics.json"))["history"][0]["seconds"]
    epochs = max(1, round(args.minutes * 60 / epoch))
    subprocess.run(command(name, args) + ["--out", os.path.join(out, "model"),
                                          "--epochs", str(epochs)], check=True, env=env)
    metrics = read(os.path.join(out, "model", "metrics.json"))
    write(result, {"epochs": epochs, "pilot_epoch_seconds": epoch,
                   "minutes": sum(row["seconds"] for row in metrics["history"]) / 60,
                   "best_epoch": metrics["best_epoch"], "test": metrics["test"]})


MAPS = r"""
import json, sys
import numpy as np
from keras import ops
from captioner.data.coco import CaptionSource
from captioner.metrics import ObjectLexicon, attention_correctness
from captioner.models.transformer import reduce_maps
from captioner.tasks import ImageCaptioner

folder, data = sys.argv[1:3]
task = ImageCaptioner.from_folder(folder)
records, instances = CaptionSource(data, None, None).split("test")
lexicon = ObjectLexicon.from_instances(instances)
results = task.caption([r.path for r in records], batch_size=32, heads=True)
layers, heads = task.model.decoder.attention_shape
samples = {}
for record, result in zip(records, results):
    maps = result.best.heads  # (n_words, layers, heads, H, W)
    size = (record.width, record.height)
    objects = instances.get(record.image_id, [])
    flat = maps.reshape(maps.shape[:3] + (-1,))
    views = {how: ops.convert_to_numpy(reduce_maps(flat, how))
             for how in ("last_layer", "all_layers", "first_layer")}
    views.update({f"layer {l + 1} head {h + 1}": flat[:, l, h]
                  for l in range(layers) for h in range(heads)})
    for how, alphas in views.items():
        samples.setdefault(how, []).append((result.best.words, alphas, objects, size))
found = {how: attention_correctness(s, lexicon, task.grid_shape) for how, s in samples.items()}
print(json.dumps({how: {"attention_correctness": v["attention_correctness"],
                        "uniform_baseline": v["uniform_baseline"]} for how, v in found.items()}))
"""


SPEED = r"""
import json, sys, time
import numpy as np
from captioner import SearchConfig, load_model
from benchmarks.common import best_ms as best
from captioner.search import CompiledSearch, GreedySampler

folder = sys.argv[1]
saved = load_model(folder)
model, vocabulary = saved.model, saved.vocabulary
size, longest = model.model_config.encoder.image_size, model.model_config.max_length
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (32, size, size, 3)).astype("uint8")


start = vocabulary.start_id
figures = {
    "greedy_ms_one_image": best(saved.search(), {"images": images[:1]}),
    "greedy_ms_per_caption_32": best(saved.search(), {"images": images}) / 32,
    "beam5_ms_per_caption_32": best(saved.search(SearchConfig(beam=5)),
                                    {"images": images}) / 32,
}
# at the maximum length: an <end> id no word has, so every caption runs all the steps
features = {"features": np.asarray(model.encode(images))}
if hasattr(model.decoder, "kv_cache"):
    for cache in (True, False):
        model.decoder.kv_cache = cache
        figures["full_length_ms_per_caption_32_" + ("cached" if cache else "recomputed")] = \
            best(CompiledSearch(model, GreedySampler(), start, -1, longest), features, 3) / 32
    model.decoder.kv_cache = True
else:
    figures["full_length_ms_per_caption_32_cached"] = best(
        CompiledSearch(model, GreedySampler(), start, -1, longest), features, 3) / 32
print(json.dumps(figures))
"""


def child(code, arguments, env):
    result = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True,
                            text=True, env=env)
    if result.returncode:
        sys.exit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def maps(name, args, env):
    result = os.path.join(args.out, name, "bench_maps.json")
    if name.startswith("transformer") and not os.path.exists(result):
        write(result, child(MAPS, [os.path.join(args.out, name, "model"), args.data], env))


def speed(name, args, env):
    result = os.path.join(args.out, name, "bench_speed.json")
    if os.path.exists(result):
        return
    folder = os.path.join(args.out, name, "model")
    figures = child(SPEED, [folder], env)
    step = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_speed", "--model", folder,
         "--backend", "jax," + args.backend if args.backend != "jax" else "jax"],
        capture_output=True, text=True, env=env)
    if step.returncode:
        sys.exit(step.stderr[-3000:])
    for line in step.stdout.strip().splitlines():
        row = json.loads(line)
        if row["kind"] == "joint" and row["backend"] == args.backend:
            figures.update(ms_per_step=row["ms_per_step"], gflop_per_step=row.get("gflop_per_step"),
                           share_of_peak=row.get("share_of_peak"))
    write(result, figures)


def table(args):
    rows = ["| decoder | epochs (pilot s / epoch), minutes | BLEU-4 | CIDEr-D | "
            "object precision | CHAIR_s | "
            "attention correctness (uniform) | captions/s | step: ms, share of fp32 peak | "
            "greedy, 1 image: ms | beam 5 at batch 32: ms / caption |",
            "|---" * 11 + "|"]
    for name in MEMBERS:
        folder = os.path.join(args.out, name)
        if not os.path.exists(os.path.join(folder, "bench_train.json")):
            continue
        trained = read(os.path.join(folder, "bench_train.json"))
        test = trained["test"]
        speed_path = os.path.join(folder, "bench_speed.json")
        fast = read(speed_path) if os.path.exists(speed_path) else {}
        speed_cells = ["", "", "", ""]
        if fast:
            speed_cells = [f"{32000 / fast['ms_per_step']:.0f}",
                           f"{fast['ms_per_step']:.0f}, {fast['share_of_peak']:.0%}"
                           if fast.get("share_of_peak") else f"{fast['ms_per_step']:.0f}",
                           f"{fast['greedy_ms_one_image']:.1f}",
                           f"{fast['beam5_ms_per_caption_32']:.2f}"]
        cells = [name, f"{trained['epochs']} ({trained['pilot_epoch_seconds']:.0f}), "
                       f"{trained['minutes']:.1f}",
                 f"{test['BLEU-4']:.3f}", f"{test['CIDEr']:.3f}",
                 f"{test['object_precision']:.3f}", f"{test['chair_s']:.3f}",
                 f"{test['attention_correctness']:.3f} ({test['uniform_baseline']:.3f})",
                 *speed_cells]
        rows.append("| " + " | ".join(cells) + " |")
    print("\n".join(rows))
    for name in MEMBERS:
        folder = os.path.join(args.out, name)
        for kind in ("maps", "speed"):
            path = os.path.join(folder, f"bench_{kind}.json")
            if os.path.exists(path):
                print(json.dumps({"member": name, kind: read(path), "machine": machine()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "hard"))
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "transformer"))
    parser.add_argument("--minutes", type=float, default=4.5)
    parser.add_argument("--only", default=",".join(MEMBERS))
    parser.add_argument("--phase", default="pilot,train,maps,speed")
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="train.py options added to every run")
    args = parser.parse_args()
    args.data, args.out = os.path.abspath(args.data), os.path.abspath(args.out)
    env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND=args.backend,
               TF_CPP_MIN_LOG_LEVEL="3")
    if not os.path.exists(os.path.join(args.data, "annotations")):
        subprocess.run([sys.executable, "-m", "captioner.commands.synth", "--style", "hard",
                        "--seed", "1", "--out", args.data], check=True, env=env)
    phases = {"pilot": pilot, "train": train, "maps": maps, "speed": speed}
    for phase in args.phase.split(","):
        for name in args.only.split(","):
            phases[phase](name, args, env)
    table(args)


if __name__ == "__main__":
    main()
