"""Caption images and show where the model looked for every word.

    captioner caption IMAGE_OR_FOLDER... [--model DIR] [--beam K] [--n-best N] [--json]
                      [--attention-dir DIR] [--html DIR]
    captioner caption IMAGE_OR_FOLDER... --model RAM_DIR [--json] [--attention-dir DIR]
                      # a Recurrent Attention Model classifies, and draws its glimpse path

(``--coco DIR --split S`` scores a split, as ``captioner evaluate`` does.)

``--html DIR`` writes the browser viewer (``captioner.viewer``): DIR/index.html.
"""

import contextlib
import json
import os
import sys

from captioner.cli import ArgumentParser, printable, run
from captioner.commands.common import (
    add_model_options,
    add_output_options,
    attention_pngs,
    check_map_names,
    check_outputs,
    load_task,
    map_path,
    progress_bar,
    unique_stems,
)

PROG = "captioner caption"


def build_parser(prog=PROG):
    from captioner.commands.evaluate import add_scoring_options
    parser = ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        usage="%(prog)s IMAGE_OR_FOLDER... [--model DIR] [--beam K] [--json] "
              "[--attention-dir DIR] [--html DIR]")
    parser.add_argument("inputs", nargs="*", metavar="IMAGE_OR_FOLDER",
                        help="image files, or folders whose images are all captioned")
    add_model_options(parser)
    add_output_options(parser)
    collections = parser.group("collections too large for one process")
    collections.add_argument("--jsonl", metavar="FILE",
                             help="add one JSON object per image to FILE as each is answered "
                                  "(as --json's); run again with the same FILE to resume: "
                                  "images captioned there already are skipped")
    collections.add_argument("--shard", metavar="I/N",
                             help="caption only share I of N (0 <= I < N) of the inputs, chosen "
                                  "by their paths: N processes given the same inputs take "
                                  "disjoint shares that together are all of them")
    add_scoring_options(parser, "scoring an annotated split (as captioner evaluate)")
    return parser


def parse_args(argv, prog=PROG):
    from captioner.commands.evaluate import check_args
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if bool(args.inputs) == bool(args.coco or args.karpathy):
        parser.error("give images or folders to caption, or --coco DIR (or --karpathy FILE "
                     "--images DIR) to score a split")
    if (args.jsonl or args.shard) and not args.inputs:
        parser.error("--jsonl and --shard caption images or folders, not a split")
    if args.shard:
        from captioner.batch_jobs import parse_shard
        try:
            args.shard = parse_shard(args.shard)
        except ValueError as error:
            parser.error(str(error))
    return check_args(parser, args)


class Answers:
    """What the command answered, one entry per input: kept for --json, written a line at
    a time to --jsonl, counted for the exit status."""

    def __init__(self, keep, jsonl=None):
        self.kept = [] if keep else None
        self.jsonl, self.count, self.failed = jsonl, 0, 0

    def append(self, entry):
        self.count += 1
        self.failed += "error" in entry
        if self.kept is not None:
            self.kept.append(entry)
        if self.jsonl is not None:
            self.jsonl.write(entry)


def expand_inputs(inputs):
    """(paths, unreadable): files as given, folders replaced by their images, and an
    ``Unreadable`` for each input that is not there or is a folder without images."""
    from captioner.data.images import Unreadable, list_images
    from captioner.folders import KINDS, is_kind
    paths, unreadable = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = list_images(item)
            if is_kind(item, "maps"):  # heat maps written there are not inputs
                found = [p for p in found if not KINDS["maps"].owns(os.path.basename(p))]
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
    message = f"error: {printable(item.reason)}"
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


def viewer(args, kind, title, **options):
    """The ``--html`` writer (a no-op context without it)."""
    import contextlib
    if not args.html:
        return contextlib.nullcontext()
    from captioner.viewer.pages import ViewerWriter
    return ViewerWriter(args.html, kind, title, overwrite=args.overwrite, **options)


def caption_images(args, task, paths, missing=(), results=None):
    """Captions ``paths`` with ``task`` (an ImageCaptioner); the ``missing`` inputs (and
    any file that cannot be read) are reported, one line each, and every readable image is
    still captioned. ``results``: where each answer goes (a list, or ``Answers``)."""
    results = [] if results is None else results
    answers = task.answers(paths, args.search, batch_size=args.batch_size,
                           unreadable="report", heads=bool(args.html))
    title = f"captions of {len(paths)} image(s) by {args.model}"
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
            if warning:  # said before the caption, where a reader of the caption sees it
                trained_on = f" ({task.trained_on})" if task.trained_on else ""
                progress.write(f"note: {printable(answer.path)} is unlike the images this "
                               f"model was trained on{trained_on}: its caption is likely wrong "
                               "(to caption such images, train on them: docs/guides/"
                               "train-coco.md)", file=sys.stderr)
            if not args.json:
                marked = f"  [{warning}]" if warning else ""
                progress.write(f"{printable(answer.path)}: {answer.caption}{marked}",
                               file=sys.stdout)
                for rank, caption in enumerate(answer.n_best[1:], start=2):
                    progress.write(f"    {rank}. {caption.caption}  (log p "
                                   f"{caption.log_probability:.2f}, score {caption.score:.3f})",
                                   file=sys.stdout)
    return results


def classify_images(args, task, paths, missing=(), results=None):
    """A Recurrent Attention Model's answer per image (``task``: a RAMClassifier), and its
    glimpse path as a PNG (unreadable inputs as in ``caption_images``)."""
    from captioner.render import save_glimpse_figure
    results = [] if results is None else results
    answers = task.answers(paths, args.batch_size, unreadable="report")
    config = task.model.model_config
    title = f"glimpses of {len(paths)} image(s) by {args.model}"
    with progress_bar(len(paths), "classifying") as progress, \
            viewer(args, "glimpses", title) as html:
        for answer, stem in readable(answers, paths, missing, results, progress, html):
            result = answer.to_json()
            if args.attention_dir:
                png = map_path(args.attention_dir, f"{stem}_glimpses.png")
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
                progress.write(f"{printable(answer.path)}: {result['label']} "
                               f"({result['probability']:.2f})", file=sys.stdout)
    return results


def main(argv=None, prog=PROG):
    """Exit status: 0 every input answered, 1 some could not be read (each said on its own
    line on standard error, and as an "error" entry with --json), 2 none could (or a user
    mistake: an option, the model folder, an annotation file)."""
    args = parse_args(argv, prog)
    check_outputs(args, scoring=not args.inputs)
    paths, missing = expand_inputs(args.inputs) if args.inputs else ([], [])  # before keras
    if args.shard:
        from captioner.batch_jobs import in_shard, shard
        paths = shard(paths, *args.shard)
        missing = [item for item in missing if in_shard(item.path, *args.shard)]
    if args.inputs and not paths and not args.shard:
        for item in missing:
            print(f"error: {printable(item.reason)}", file=sys.stderr)
        return 2
    jsonl = None
    if args.jsonl:
        from captioner.batch_jobs import JsonLines
        jsonl = JsonLines(args.jsonl)
        done = [path for path in paths if path in jsonl.answered]
        if done:
            print(f"resuming {printable(args.jsonl)}: {len(done)} of {len(paths)} images are "
                  "captioned there already", file=sys.stderr)
            paths = [path for path in paths if path not in jsonl.answered]
    with jsonl if jsonl is not None else contextlib.nullcontext():
        return answer(args, paths, missing, jsonl)


def answer(args, paths, missing, jsonl):
    from captioner.commands.evaluate import score_split
    if args.inputs and not paths and not missing:
        print("nothing to caption" + (" in this shard" if args.shard else "") +
              (" that is not in --jsonl already" if jsonl else ""), file=sys.stderr)
        return 0
    check_map_names(args, paths)
    task = load_task(args)
    if not args.inputs:
        return score_split(args, task)
    results = Answers(keep=args.json, jsonl=jsonl)
    (classify_images if task.kind == "ram" else caption_images)(
        args, task, paths, missing, results)
    if args.json:
        print(json.dumps(results.kept, indent=2))
    failed, count = results.failed, results.count
    if failed < count:  # where the files went
        for what, path in (("heat maps", args.attention_dir),
                           ("viewer", args.html and os.path.join(args.html, "index.html")),
                           ("answers", args.jsonl)):
            if path:
                print(f"{what}: {printable(os.path.abspath(path))}", file=sys.stderr)
    if failed and failed < count:
        print(f"answered {count - failed} of {count} inputs; {failed} could not "
              "be read (above)", file=sys.stderr)
    return 0 if not failed else 1 if failed < count else 2


def entry(prog=PROG):
    """The ``captioner caption`` command (and ``caption``, ``caption.py``)."""
    sys.exit(run(lambda argv: main(argv, prog=prog)))
