"""Every way to decode, on one model and one split: quality, claims, diversity and speed.

    python -m benchmarks.decoding --model runs/hard/lstm --coco data/hard2k
        [--ensemble runs/hard/lstm_seed1] [--split test] [--limit 400]

For each search (greedy, beam 3 and 5, diverse beam, top-p sampling with 5 samples, n-gram
blocking with greedy and beam 3, and with ``--ensemble`` the second model alone and the
two-model ensemble, greedy and beam 3, every search as ``caption`` searches by default:
grounded for a model with a grounding head, an ensemble's members each by its own) it captions
the split once through ``ImageCaptioner.evaluate`` and prints one Markdown table:

- CIDEr-D, object precision and all-true (every checkable claim of the caption true) of the
  best caption of each image;
- object precision averaged over every caption of the lists (n-best or samples): what a user
  shown the whole list is told;
- distinct-2 within an image's list (distinct bigrams / bigrams of its captions, averaged
  over images; 1 caption: of that one), and over the best captions of the split;
- the share of captions with a repeated trigram (of all captions of the lists);
- ms per image at batch 1 and 32 (encoder + search + reading the hypotheses back, images
  already in memory; best of 5 warm calls).

CIDEr uses the project's tokenizer (no Java). Prints JSON lines as it goes, then the table.
"""

import json
import os
import time

from benchmarks.common import split_parser
from captioner.cli import import_keras_quietly

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def searches(ensemble):
    from captioner import SearchConfig
    rows = [("greedy", None, SearchConfig()),
            ("beam 3", None, SearchConfig(beam=3)),
            ("beam 5, 5-best", None, SearchConfig(beam=5, n_best=5)),
            ("diverse beam 5 (5 groups, λ 0.5), 5-best", None,
             SearchConfig(beam=5, n_best=5, beam_groups=5, diversity=0.5)),
            ("diverse beam 5 (5 groups, λ 2), 5-best", None,
             SearchConfig(beam=5, n_best=5, beam_groups=5, diversity=2.0)),
            ("diverse beam 5 (5 groups, λ 8), 5-best", None,
             SearchConfig(beam=5, n_best=5, beam_groups=5, diversity=8.0)),
            ("top-p 0.9, 5 samples", None, SearchConfig(samples=5, top_p=0.9)),
            ("top-p 0.9, T 1.5, 5 samples", None, SearchConfig(samples=5, top_p=0.9,
                                                               temperature=1.5)),
            ("greedy, no repeated trigram", None, SearchConfig(no_repeat_ngram=3)),
            ("beam 3, no repeated trigram", None, SearchConfig(beam=3, no_repeat_ngram=3))]
    if ensemble:  # each member alone, and the two as one, searching by default (grounded)
        rows += [("second seed alone, greedy", "second", SearchConfig()),
                 ("two-seed ensemble, greedy", "ensemble", SearchConfig()),
                 ("second seed alone, beam 3", "second", SearchConfig(beam=3)),
                 ("two-seed ensemble, beam 3", "ensemble", SearchConfig(beam=3))]
    return rows


def list_scores(evaluation, records, instances):
    """Object precision over every caption of the lists, distinct-2 within each list, and
    the share of captions with a repeated trigram."""
    from captioner.metrics import ObjectLexicon, object_grounding
    from captioner.metrics.diversity import diversity_scores, repeats_ngram
    lists = [evaluation.captions[r.image_id] for r in records]
    lexicon = ObjectLexicon.from_instances(instances, getattr(instances, "categories", ()))
    precisions = []
    for rank in range(max(len(found) for found in lists)):
        chosen = {r.image_id: found[rank].words for r, found in zip(records, lists)
                  if rank < len(found)}
        precisions.append((object_grounding(chosen, instances, lexicon)["object_precision"],
                           len(chosen)))
    captions = [c.words for found in lists for c in found]
    within = [diversity_scores([c.words for c in found])["distinct_2"] for found in lists]
    return {"list_object_precision": sum(p * n for p, n in precisions) /
            sum(n for _, n in precisions),
            "list_distinct_2": sum(within) / len(within),
            "list_repeated_trigrams": sum(repeats_ngram(words, 3) for words in captions) /
            len(captions),
            "captions_per_image": len(captions) / len(lists)}


def speed(task, search, images, repeats=5):
    """ms per image at batch 1 and 32 (best of ``repeats`` warm calls)."""
    import numpy as np
    figures = {}
    for batch in (1, 32):
        inputs = {"images": images[np.arange(batch) % len(images)]}
        task.decode(inputs, search)  # compiles
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            task.decode(inputs, search)
            times.append(time.perf_counter() - started)
        figures[f"ms_batch_{batch}"] = 1000 * min(times) / batch
    return figures


def main():
    parser = split_parser(__doc__)
    parser.add_argument("--ensemble", help="a second model of the same recipe (another seed)")
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--only", help="the searches whose name holds this text")
    args = parser.parse_args()
    import_keras_quietly()
    import numpy as np

    from benchmarks.common import machine
    from captioner.data.coco import CaptionSource
    from captioner.data.images import load_resized
    from captioner.evaluation import ImageLoader
    from captioner.tasks import load
    task = load(args.model)
    tasks = {None: task}
    if args.ensemble:
        tasks["second"] = load(args.ensemble)
        tasks["ensemble"] = load([args.model, args.ensemble])
    records, instances = CaptionSource(args.coco).split(args.split)
    records = records[:args.limit]
    size = task.model.model_config.encoder.image_size
    images = np.stack([load_resized(r.path, size) for r in records[:32]])
    rows = []
    for name, which, search in searches(args.ensemble):
        if args.only and args.only not in name:
            continue
        own = tasks[which]
        evaluation = own.evaluate(records, instances, search=search, metrics=("CIDEr",),
                                  tokenizer="captioner",
                                  batches=ImageLoader(records, size))
        figures = {key: evaluation.scores.get(key) for key in
                   ("CIDEr", "object_precision", "all_true", "distinct_2", "repeated_ngrams")}
        figures.update(list_scores(evaluation, records, instances))
        figures.update(speed(own, search, images))
        rows.append((name, figures))
        print(json.dumps({"figure": "decoding", "search": name, "data": args.coco,
                          "model": args.model, **figures, "machine": machine()}), flush=True)
    print(f"\n{len(records)} images of {args.coco} ({args.split}), {args.model}"
          f"{' and ' + args.ensemble if args.ensemble else ''}; {machine()}\n")
    print("| search | CIDEr-D | obj. P (best) | all true | obj. P (lists) | distinct-2 (lists)"
          " | distinct-2 (split) | repeated 3-gram | ms/image b1 | ms/image b32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, f in rows:
        print(f"| {name} | {f['CIDEr']:.3f} | {f['object_precision']:.3f} | "
              f"{f['all_true']:.3f} | {f['list_object_precision']:.3f} | "
              f"{f['list_distinct_2']:.3f} | {f['distinct_2']:.3f} | "
              f"{f['list_repeated_trigrams']:.3f} | {f['ms_batch_1']:.1f} | "
              f"{f['ms_batch_32']:.2f} |")


if __name__ == "__main__":
    main()
