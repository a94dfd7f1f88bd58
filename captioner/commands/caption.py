"""Caption images with a trained captioner and show where it looked, or score a split.

    caption IMAGE_OR_FOLDER... [--model DIR] [--beam K] [--n-best N] [--json]
            [--attention-dir DIR] [--html DIR]
    caption --coco DIR --split test [--model DIR] [--beam K] [--out DIR] [--html DIR]
    caption IMAGE_OR_FOLDER... --model RAM_DIR [--json] [--attention-dir DIR] [--html DIR]
            # a Recurrent Attention Model classifies, and draws its glimpse path

``--html DIR`` writes the browser viewer (``captioner.viewer``): DIR/index.html.
"""

import json
import os
import sys

from captioner.cli import (ArgumentParser, add_config_options, config_from_args,
                           import_keras_quietly, run)
from captioner.commands import default_model_dir


def parse_args(argv):
    from captioner.config import SearchConfig
    from captioner.errors import ConfigError
    parser = ArgumentParser(prog="caption.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", metavar="IMAGE_OR_FOLDER",
                        help="image files, or folders whose images are all captioned")
    parser.add_argument("--model", default=default_model_dir(),
                        help="model folder (default: the bundled model in assets/model)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document and nothing else on standard output")
    parser.add_argument("--attention-dir", metavar="DIR",
                        help="write one PNG per image and hypothesis: a panel per word with "
                             "its attention map (a RAM: the glimpse path and its patches)")
    parser.add_argument("--html", metavar="DIR",
                        help="write a viewer to open in a browser (DIR/index.html, no network "
                             "needed): each word's attention over the image, the n-best "
                             "captions; with --coco a report of the split's scores and "
                             "captions; a RAM's glimpses step by step")
    parser.add_argument("--batch-size", type=int, default=16, help="images decoded together")
    add_config_options(parser, SearchConfig, "search")
    scoring = parser.add_argument_group("scoring an annotated split")
    scoring.add_argument("--coco", metavar="DIR", help="a COCO-layout folder to caption and score")
    scoring.add_argument("--split", default="test", help="the split of --coco (default: test)")
    scoring.add_argument("--out", default="evaluation", metavar="DIR",
                         help="where the captions (COCO results format) and scores are written")
    scoring.add_argument("--limit", type=int, default=None, metavar="N",
                         help="score only the first N images of the split")
    scoring.add_argument("--tokenizer", choices=("auto", "ptb", "treebank", "captioner"),
                         default="auto",
                         help="PTB (Java, as coco-caption), NLTK's Treebank tokenizer (no "
                              "Java), or captioner's own; auto: PTB where Java is installed, "
                              "else Treebank")
    args = parser.parse_args(argv)
    if bool(args.inputs) == bool(args.coco):
        parser.error("give images or folders to caption, or --coco DIR to score a split")
    try:
        args.search = config_from_args(SearchConfig, args)
    except ConfigError as error:
        parser.error(str(error))
    args.n_best = args.search.n_best
    return args


def expand_inputs(inputs):
    """(paths, unreadable): files as given, folders replaced by their images, and an
    ``Unreadable`` for each input that is not there or is a folder without images."""
    from captioner.data.images import Unreadable, list_images
    paths, unreadable = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = list_images(item)
            if not found:
                unreadable.append(Unreadable(item, f"No images in folder: {item}"))
            paths.extend(found)
        elif os.path.exists(item):
            paths.append(item)
        else:
            unreadable.append(Unreadable(item, f"Image not found: {item}"))
    return paths, unreadable


def report_unreadable(item, results, progress=None, html=None):
    """An input that could not be read: a line on standard error, an entry in the JSON
    results, a row above the viewer's items."""
    message = f"error: {item.reason}"
    if progress is not None:
        progress.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr)
    results.append({"path": item.path, "error": item.reason})
    if html is not None:
        html.unreadable(item.path, item.reason)


def readable(answers, paths, missing, results, progress, html):
    """Reports the ``missing`` inputs and each unreadable one among ``answers`` (one per
    path, ``unreadable="report"``); yields (answer, file-name stem) for the others."""
    from captioner.data.images import Unreadable
    for item in missing:
        report_unreadable(item, results, progress, html)
    for item, stem in zip(answers, unique_stems(paths)):
        progress.update(1)
        if isinstance(item, Unreadable):
            report_unreadable(item, results, progress, html)
        else:
            yield item, stem


def unique_stems(paths):
    """A distinct file-name stem per path: photo, photo_2, ... for same-named files."""
    seen, stems = {}, []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return stems


def attention_pngs(folder, stem, image, captions, warning=None):
    """Writes one attention figure per caption (``captioner.tasks.Caption``); returns
    their paths."""
    from captioner.render import save_attention_figure
    paths = []
    for rank, caption in enumerate(captions, start=1):
        path = os.path.join(folder, f"{stem}_attention{'' if rank == 1 else f'_{rank}'}.png")
        save_attention_figure(path, image, caption.words, caption.alphas,
                              caption.probabilities, chosen_cells=caption.cells,
                              warning=warning)
        paths.append(path)
    return paths


def progress_bar(total, description):
    from tqdm import tqdm
    return tqdm(total=total, desc=description, unit="image", file=sys.stderr,
                disable=total < 4)


def viewer(args, kind, title, **options):
    """The ``--html`` writer (a no-op context without it)."""
    import contextlib
    if not args.html:
        return contextlib.nullcontext()
    from captioner.viewer.pages import ViewerWriter
    return ViewerWriter(args.html, kind, title, **options)


def caption_images(args, task, paths, missing=()):
    """Captions ``paths`` with ``task`` (an ImageCaptioner); the ``missing`` inputs (and
    any file that cannot be read) are reported, one line each, and every readable image is
    still captioned."""
    results = []
    answers = task.answers(paths, args.search, batch_size=args.batch_size,
                           unreadable="report", heads=bool(args.html))
    title = f"captions of {len(paths)} image(s) by {os.path.abspath(args.model)}"
    with progress_bar(len(paths), "captioning") as progress, \
            viewer(args, "captions", title, grid=task.grid_shape) as html:
        for answer, stem in readable(answers, paths, missing, results, progress, html):
            result = answer.to_json(n_best=args.n_best > 1)
            warning = None
            if answer.out_of_domain:
                warning = (f"out of domain (distance {answer.domain_distance:.1f} > "
                           f"{task.domain.threshold:.1f}): unlike the training images")
            if args.attention_dir:
                pngs = attention_pngs(args.attention_dir, stem, answer.image, answer.n_best,
                                      warning)
                result["attention_png"] = pngs[0]
                for entry, png in zip(result.get("n_best", []), pngs):
                    entry["attention_png"] = png
            if html is not None:
                from captioner.viewer.pages import caption_item
                html.add(answer.image, {"name": answer.path, "warning": warning,
                                        "hypotheses": [caption_item(c) for c in answer.n_best]})
            results.append(result)
            if not args.json:
                marked = f"  [{warning}]" if warning else ""
                progress.write(f"{answer.path}: {answer.caption}{marked}", file=sys.stdout)
                for rank, caption in enumerate(answer.n_best[1:], start=2):
                    progress.write(f"    {rank}. {caption.caption}  (log p "
                                   f"{caption.log_probability:.2f}, score {caption.score:.3f})",
                                   file=sys.stdout)
    return results


def classify_images(args, task, paths, missing=()):
    """A Recurrent Attention Model's answer per image (``task``: a RAMClassifier), and its
    glimpse path as a PNG (unreadable inputs as in ``caption_images``)."""
    from captioner.render import save_glimpse_figure
    results = []
    answers = task.answers(paths, args.batch_size, unreadable="report")
    config = task.model.model_config
    title = f"glimpses of {len(paths)} image(s) by {os.path.abspath(args.model)}"
    with progress_bar(len(paths), "classifying") as progress, \
            viewer(args, "glimpses", title) as html:
        for answer, stem in readable(answers, paths, missing, results, progress, html):
            result = answer.to_json()
            if args.attention_dir:
                png = os.path.join(args.attention_dir, f"{stem}_glimpses.png")
                save_glimpse_figure(png, answer.image, answer.locations, answer.patches,
                                    title=f"{answer.label} ({answer.probability:.2f})")
                result["glimpse_png"] = png
            if html is not None:
                from captioner.viewer.pages import glimpse_item
                html.add(answer.image, {"name": answer.path,
                                        "input": [config.height, config.width],
                                        **glimpse_item(answer, config.height, config.width,
                                                       config.patch, config.scales)})
            results.append(result)
            if not args.json:
                progress.write(f"{answer.path}: {result['label']} ({result['probability']:.2f})",
                               file=sys.stdout)
    return results


def score_split(args, task):
    """Captions and scores the split ``--coco DIR --split S`` with ``task`` (an
    ImageCaptioner); writes the captions and scores, the heat maps and the report asked
    for."""
    from captioner import io
    from captioner.data.coco import load_coco_split
    from captioner.data.images import load_image
    from captioner.errors import ConfigError
    from captioner.evaluation import format_scores
    from captioner.tasks import Caption
    if task.kind != "captioner":
        raise ConfigError(f"{args.model} is a Recurrent Attention Model: it classifies images; "
                          "--coco scores captioners")
    # a file the annotations name that is missing or broken is skipped, and said
    records, instances = load_coco_split(args.coco, args.split, check_files=False)
    records = records[:args.limit] if args.limit else records
    with progress_bar(len(records), f"captioning {args.split}") as progress:
        evaluation = task.evaluate(records, instances, search=args.search,
                                   batch_size=args.batch_size, progress=progress,
                                   tokenizer=args.tokenizer)
    unreadable = evaluation.notes["unreadable"]
    for why in unreadable.values():
        print(f"error: {why}", file=sys.stderr)
    if unreadable:
        print(f"skipped {len(unreadable)} of {len(records)} images of the split that cannot "
              "be read (above); the scores are of the other "
              f"{len(records) - len(unreadable)}", file=sys.stderr)
        records = [record for record in records if record.path not in unreadable]
    name = f"{args.split}_{args.search.name}"
    captions_path = os.path.join(args.out, f"captions_{name}.json")
    scores_path = os.path.join(args.out, f"scores_{name}.json")
    io.write_json(captions_path, evaluation.results)
    report = {"model": os.path.abspath(args.model), "data": os.path.abspath(args.coco),
              "split": args.split, "search": {k: v for k, v in args.search.options().items()
                                              if v is not None},
              "scores": evaluation.scores, "notes": evaluation.notes}
    io.write_json(scores_path, report)

    def images():  # each image read once, for its heat maps and the report alike
        for record, stem in zip(records, unique_stems([r.path for r in records])):
            image = load_image(record.path)
            if args.attention_dir:
                attention_pngs(args.attention_dir, stem, image,
                               [Caption.from_hypothesis(hypothesis)
                                for hypothesis in evaluation.captions[record.image_id]])
            yield image
    if args.html:
        from captioner.viewer.report import write_report
        write_report(args.html, task, records, instances, evaluation,
                     f"{args.split} split of {os.path.abspath(args.coco)}, "
                     f"{args.search.name} search, model {os.path.abspath(args.model)}",
                     images=images())
    elif args.attention_dir:
        for _ in images():
            pass
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.split}: {len(records)} images, {args.search.name} search, "
              f"tokenizer {evaluation.notes['tokenizer']}")
        print(format_scores(evaluation.scores))
        print(f"captions: {captions_path}\nscores:   {scores_path}")
    return 1 if unreadable else 0


def main(argv=None):
    """Exit status: 0 every input answered, 1 some could not be read (each said on its own
    line on standard error, and as an "error" entry with --json), 2 none could (or a user
    mistake: an option, the model folder, an annotation file)."""
    args = parse_args(argv)
    from captioner.io import check_output_folder
    for option, folder in (("--attention-dir", args.attention_dir), ("--html", args.html),
                           ("--out", args.out if args.coco else None)):
        if folder:
            check_output_folder(folder, option)  # one line before any work, not a traceback
    paths, missing = expand_inputs(args.inputs) if args.inputs else ([], [])  # before keras
    if args.inputs and not paths:
        for item in missing:
            print(f"error: {item.reason}", file=sys.stderr)
        return 2
    import_keras_quietly()
    from captioner import tasks
    task = tasks.load(args.model)
    if getattr(args, "search", None) is not None and args.search.grounded \
            and getattr(task.model, "grounding", None) is None:
        from captioner.errors import ModelError
        raise ModelError(f"--grounded needs a model with a grounding head; {args.model} has "
                         "none (train it where the data has boxes, with --grounding)")
    if not args.inputs:
        return score_split(args, task)
    results = (classify_images if task.kind == "ram" else caption_images)(
        args, task, paths, missing)
    if args.json:
        print(json.dumps(results, indent=2))
    failed = sum("error" in result for result in results)
    if failed and failed < len(results):
        print(f"answered {len(results) - failed} of {len(results)} inputs; {failed} could not "
              "be read (above)", file=sys.stderr)
    return 0 if not failed else 1 if failed < len(results) else 2


def entry():
    """The ``caption`` console command."""
    sys.exit(run(main))
