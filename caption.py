#!/usr/bin/env python3
"""Caption images with a trained captioner and show where it looked, or score a split.

    python caption.py IMAGE_OR_FOLDER... [--model DIR] [--beam K] [--n-best N] [--json]
                      [--attention-dir DIR]
    python caption.py --coco DIR --split test [--model DIR] [--beam K] [--out DIR]
    python caption.py IMAGE_OR_FOLDER... --model RAM_DIR [--json] [--attention-dir DIR]
                      # a Recurrent Attention Model classifies, and draws its glimpse path
"""

import json
import os
import sys

from captioner.cli import ArgumentParser, import_keras_quietly, run

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "model")


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", metavar="IMAGE_OR_FOLDER",
                        help="image files, or folders whose images are all captioned")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="model folder (default: the bundled model in assets/model)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document and nothing else on standard output")
    parser.add_argument("--attention-dir", metavar="DIR",
                        help="write one PNG per image and hypothesis: a panel per word with "
                             "its attention map (a RAM: the glimpse path and its patches)")
    parser.add_argument("--batch-size", type=int, default=16, help="images decoded together")
    search = parser.add_argument_group("search")
    search.add_argument("--beam", type=int, default=1, metavar="K",
                        help="beam size; 1 (the default) is greedy search")
    search.add_argument("--n-best", type=int, default=1, metavar="N",
                        help="captions per image, best first (at most K)")
    search.add_argument("--length-penalty", type=float, default=0.0, metavar="ALPHA",
                        help="beam search ranks by log-probability / length ** ALPHA (0, the "
                             "default: the total; 1: the mean per word, for longer captions)")
    search.add_argument("--min-length", type=int, default=0, help="fewest words (beam search)")
    search.add_argument("--max-length", type=int, default=None,
                        help="most words (default: the model's)")
    scoring = parser.add_argument_group("scoring an annotated split")
    scoring.add_argument("--coco", metavar="DIR", help="a COCO-layout folder to caption and score")
    scoring.add_argument("--split", default="test", help="the split of --coco (default: test)")
    scoring.add_argument("--out", default="evaluation", metavar="DIR",
                         help="where the captions (COCO results format) and scores are written")
    scoring.add_argument("--limit", type=int, default=None, metavar="N",
                         help="score only the first N images of the split")
    scoring.add_argument("--tokenizer", choices=("auto", "ptb", "captioner"), default="auto",
                         help="PTB (Java, as coco-caption) or captioner's own; auto: PTB "
                              "where Java is installed")
    args = parser.parse_args(argv)
    if bool(args.inputs) == bool(args.coco):
        parser.error("give images or folders to caption, or --coco DIR to score a split")
    if args.beam < 1 or not 1 <= args.n_best <= args.beam:
        parser.error(f"need --beam >= 1 and 1 <= --n-best <= --beam "
                     f"(received --beam {args.beam} --n-best {args.n_best})")
    return args


def search_options(args):
    options = {"beam_size": args.beam, "max_length": args.max_length}
    if args.beam > 1:
        options.update(n_best=args.n_best, length_penalty=args.length_penalty,
                       min_length=args.min_length)
    return options


def search_name(args):
    return "greedy" if args.beam == 1 else f"beam{args.beam}"


def expand_inputs(inputs):
    """Files as given, folders replaced by their images; every path checked first."""
    from captioner.data.images import list_images
    from captioner.errors import ImageError
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = list_images(item)
            if not found:
                raise ImageError(f"No images in folder: {item}")
            paths.extend(found)
        elif os.path.exists(item):
            paths.append(item)
        else:
            raise ImageError(f"Image not found: {item}")
    return paths


def unique_stems(paths):
    """A distinct file-name stem per path: photo, photo_2, ... for same-named files."""
    seen, stems = {}, []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return stems


def attention_pngs(folder, stem, image, hypotheses, model):
    """Writes one attention figure per hypothesis; returns their paths. A hard-attention
    model that decodes with the most likely cell gets that cell outlined per word."""
    from captioner.render import save_attention_figure
    decoder = model.model_config.decoder
    hard = decoder.attention == "hard" and decoder.hard_inference == "argmax"
    paths = []
    for rank, hypothesis in enumerate(hypotheses, start=1):
        suffix = "" if rank == 1 else f"_{rank}"
        path = os.path.join(folder, f"{stem}_attention{suffix}.png")
        alphas = hypothesis["alphas"]
        chosen = alphas.reshape(len(alphas), -1).argmax(-1) if hard else None
        save_attention_figure(path, image, hypothesis["words"], alphas,
                              hypothesis["probabilities"], chosen_cells=chosen)
        paths.append(path)
    return paths


def hypothesis_json(hypothesis):
    return {"caption": hypothesis["caption"],
            "words": [{"word": w, "probability": round(p, 4)}
                      for w, p in zip(hypothesis["words"], hypothesis["probabilities"])],
            "log_probability": round(hypothesis["log_prob"], 4),
            "score": round(hypothesis["score"], 4), "finished": hypothesis["finished"]}


def caption_images(args):
    from tqdm import tqdm

    from captioner.data.images import load_image
    from captioner.inference import caption_files
    from captioner.models.captioner import load_model_dir

    paths = expand_inputs(args.inputs)
    for path in paths:  # every image is checked before the model is even loaded
        load_image(path)
    if model_kind(args.model) == "ram":
        return classify_images(args, paths)
    model, vocabulary, _ = load_model_dir(args.model)
    results = []
    files = caption_files(model, vocabulary, paths, batch_size=args.batch_size,
                          **search_options(args))
    with tqdm(total=len(paths), desc="captioning", unit="image", file=sys.stderr,
              disable=len(paths) < 4) as progress:
        for (path, image, hypotheses), stem in zip(files, unique_stems(paths)):
            result = {"path": path, **hypothesis_json(hypotheses[0])}
            if args.n_best > 1:
                result["n_best"] = [hypothesis_json(h) for h in hypotheses]
            if args.attention_dir:
                pngs = attention_pngs(args.attention_dir, stem, image, hypotheses, model)
                result["attention_png"] = pngs[0]
                for entry, png in zip(result.get("n_best", []), pngs):
                    entry["attention_png"] = png
            results.append(result)
            progress.update(1)
            if not args.json:
                progress.write(f"{path}: {hypotheses[0]['caption']}", file=sys.stdout)
                for rank, h in enumerate(hypotheses[1:], start=2):
                    progress.write(f"    {rank}. {h['caption']}  (log p {h['log_prob']:.2f}, "
                                   f"score {h['score']:.3f})", file=sys.stdout)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def classify_images(args, paths):
    """A Recurrent Attention Model's answer per image, and its glimpse path as a PNG."""
    import numpy as np
    from tqdm import tqdm

    from captioner.data.classification import prepare_image
    from captioner.data.images import load_image
    from captioner.models.ram import load_ram_dir
    from captioner.render import save_glimpse_figure

    model, classes, _ = load_ram_dir(args.model)
    c = model.ram_config
    results = []
    stems = unique_stems(paths)
    with tqdm(total=len(paths), desc="classifying", unit="image", file=sys.stderr,
              disable=len(paths) < 4) as progress:
        for start in range(0, len(paths), args.batch_size):
            chunk = paths[start:start + args.batch_size]
            images = np.stack([prepare_image(load_image(p), c.height, c.width, c.channels)
                               for p in chunk])
            outputs = {k: np.asarray(v) for k, v in model.predict_on_batch(images).items()}
            logits = outputs["logits"] - outputs["logits"].max(-1, keepdims=True)
            probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
            for row, path in enumerate(chunk):
                best = int(probabilities[row].argmax())
                locations = outputs["locations"][row]
                result = {"path": path, "label": classes[best],
                          "probability": round(float(probabilities[row, best]), 4),
                          "glimpses": [{"row": round(float((r + 1) / 2 * c.height), 2),
                                        "column": round(float((q + 1) / 2 * c.width), 2)}
                                       for r, q in locations]}
                if args.attention_dir:
                    png = os.path.join(args.attention_dir, f"{stems[start + row]}_glimpses.png")
                    save_glimpse_figure(png, images[row], locations, outputs["patches"][row],
                                        title=f"{classes[best]} ({probabilities[row, best]:.2f})")
                    result["glimpse_png"] = png
                results.append(result)
                progress.update(1)
                if not args.json:
                    progress.write(f"{path}: {result['label']} ({result['probability']:.2f})",
                                   file=sys.stdout)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def score_split(args):
    from tqdm import tqdm

    from captioner import io
    from captioner.data.coco import load_coco_split
    from captioner.evaluation import evaluate, format_scores
    from captioner.models.captioner import load_model_dir

    if model_kind(args.model) == "ram":
        from captioner.errors import ConfigError
        raise ConfigError(f"{args.model} is a Recurrent Attention Model: it classifies images; "
                          "--coco scores captioners")
    records, instances = load_coco_split(args.coco, args.split)
    records = records[:args.limit] if args.limit else records
    model, vocabulary, _ = load_model_dir(args.model)
    with tqdm(total=len(records), desc=f"captioning {args.split}", unit="image",
              file=sys.stderr) as progress:
        evaluation = evaluate(model, vocabulary, records, instances, args.batch_size,
                              progress=progress, tokenizer=args.tokenizer, **search_options(args))
    name = f"{args.split}_{search_name(args)}"
    captions_path = os.path.join(args.out, f"captions_{name}.json")
    scores_path = os.path.join(args.out, f"scores_{name}.json")
    io.write_json(captions_path, evaluation.results)
    report = {"model": os.path.abspath(args.model), "data": os.path.abspath(args.coco),
              "split": args.split, "search": {k: v for k, v in search_options(args).items()
                                              if v is not None},
              "scores": evaluation.scores, "notes": evaluation.notes}
    io.write_json(scores_path, report)
    if args.attention_dir:
        from captioner.data.images import load_image
        stems = unique_stems([r.path for r in records])
        for record, stem in zip(records, stems):
            attention_pngs(args.attention_dir, stem, load_image(record.path),
                           evaluation.captions[record.image_id], model)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.split}: {len(records)} images, {search_name(args)} search, "
              f"tokenizer {evaluation.notes['tokenizer']}")
        print(format_scores(evaluation.scores))
        print(f"captions: {captions_path}\nscores:   {scores_path}")
    return 0


def model_kind(folder):
    """"captioner" or "ram", from the folder's config.json (the loaders check the rest)."""
    from captioner import io
    path = os.path.join(folder, "config.json")
    return io.read_json(path, "model config").get("kind") if os.path.isfile(path) else None


def main(argv=None):
    args = parse_args(argv)
    if args.inputs:
        expand_inputs(args.inputs)  # a missing file is reported before keras starts
    import_keras_quietly()
    return caption_images(args) if args.inputs else score_split(args)


if __name__ == "__main__":
    sys.exit(run(main))
