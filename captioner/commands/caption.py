"""Caption images and show where the model looked for every word.

    captioner caption IMAGE_OR_FOLDER... [--model DIR] [--beam K] [--n-best N] [--json]
                      [--attention-dir DIR] [--html DIR]
    captioner caption IMAGE_OR_FOLDER... --model RAM_DIR [--json] [--attention-dir DIR]
                      # a Recurrent Attention Model classifies, and draws its glimpse path

(``--coco DIR --split S`` scores a split, as ``captioner evaluate`` does.)

``--html DIR`` writes the browser viewer (``captioner.viewer``): DIR/index.html.
"""

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
    add_scoring_options(parser, "scoring an annotated split (as captioner evaluate)")
    return parser


def parse_args(argv, prog=PROG):
    from captioner.commands.evaluate import check_args
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if bool(args.inputs) == bool(args.coco or args.karpathy):
        parser.error("give images or folders to caption, or --coco DIR (or --karpathy FILE "
                     "--images DIR) to score a split")
    return check_args(parser, args)


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


def caption_images(args, task, paths, missing=()):
    """Captions ``paths`` with ``task`` (an ImageCaptioner); the ``missing`` inputs (and
    any file that cannot be read) are reported, one line each, and every readable image is
    still captioned."""
    results = []
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
                               f"model was trained on{trained_on}: its caption is likely wrong",
                               file=sys.stderr)
            if not args.json:
                marked = f"  [{warning}]" if warning else ""
                progress.write(f"{printable(answer.path)}: {answer.caption}{marked}",
                               file=sys.stdout)
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
    from captioner.commands.evaluate import score_split
    args = parse_args(argv, prog)
    check_outputs(args, scoring=not args.inputs)
    paths, missing = expand_inputs(args.inputs) if args.inputs else ([], [])  # before keras
    if args.inputs and not paths:
        for item in missing:
            print(f"error: {printable(item.reason)}", file=sys.stderr)
        return 2
    check_map_names(args, paths)
    task = load_task(args)
    if not args.inputs:
        return score_split(args, task)
    results = (classify_images if task.kind == "ram" else caption_images)(
        args, task, paths, missing)
    if args.json:
        print(json.dumps(results, indent=2))
    failed = sum("error" in result for result in results)
    if failed < len(results):  # where the files went
        for what, path in (("heat maps", args.attention_dir),
                           ("viewer", args.html and os.path.join(args.html, "index.html"))):
            if path:
                print(f"{what}: {printable(os.path.abspath(path))}", file=sys.stderr)
    if failed and failed < len(results):
        print(f"answered {len(results) - failed} of {len(results)} inputs; {failed} could not "
              "be read (above)", file=sys.stderr)
    return 0 if not failed else 1 if failed < len(results) else 2


def entry(prog=PROG):
    """The ``captioner caption`` command (and ``caption``, ``caption.py``)."""
    sys.exit(run(lambda argv: main(argv, prog=prog)))
