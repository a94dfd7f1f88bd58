"""Greedy vs beam search on an annotated split: every caption metric, grounding, speed.

    python -m benchmarks.search_quality [--model assets/model] [--coco data/synthetic]
                                        [--split test] [--beams 1 3 5] [--length-penalty 0.0]

Captions the split once per search setting with the same model and prints one Markdown
table: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, object precision / recall, CHAIR_s, attention
correctness (and its uniform baseline), and milliseconds per image (encoder + search,
batches of 32, file reading excluded). This is the table in the README.

It scores through ``ImageCaptioner.evaluate``; the split is read once with
``captioner.data.coco`` to time the searches on the same images.
"""

import argparse
import os
import platform

from captioner.cli import import_keras_quietly

COLUMNS = (("BLEU-1", "B-1"), ("BLEU-2", "B-2"), ("BLEU-3", "B-3"), ("BLEU-4", "B-4"),
           ("METEOR", "METEOR"), ("ROUGE-L", "ROUGE-L"), ("CIDEr", "CIDEr-D"),
           ("object_precision", "obj. P"), ("object_recall", "obj. R"), ("chair_s", "CHAIR_s"),
           ("attention_correctness", "att. corr. (uniform)"), ("ms_per_image", "ms/image"))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.path.join(root, "assets", "model"))
    parser.add_argument("--coco", default=os.path.join(root, "data", "synthetic"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--length-penalty", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    import_keras_quietly()
    import keras

    from captioner import SearchConfig, load_model
    from captioner.data.coco import load_coco_split

    saved = load_model(args.model)
    records, instances = load_coco_split(args.coco, args.split)
    print(f"{args.model} on {args.coco} {args.split} ({len(records)} images); Keras "
          f"{keras.__version__} on {keras.backend.backend()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    print("| search | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for beam in args.beams:
        search = SearchConfig(beam=beam, length_penalty=args.length_penalty if beam > 1
                              else 0.0)
        saved.evaluate(records[:args.batch_size], instances,  # warm-up: tracing
                       search=search, batch_size=args.batch_size, metrics=("BLEU",),
                       tokenizer="captioner")
        scores = saved.evaluate(records, instances, search=search,
                                batch_size=args.batch_size).scores
        cells = []
        for key, _ in COLUMNS:
            if key == "attention_correctness":
                cells.append(f"{scores[key]:.3f} ({scores['uniform_baseline']:.3f})")
            elif key == "ms_per_image":
                cells.append(f"{scores[key]:.1f}")
            else:
                cells.append(f"{scores[key]:.3f}" if key in scores else "skipped")
        name = "greedy" if beam == 1 else f"beam {beam} (α={args.length_penalty:g})"
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
