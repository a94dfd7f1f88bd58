"""Caption a split that has reference captions and score it (BLEU, METEOR, ROUGE-L, CIDEr-D,
SPICE where Java runs; object precision, recall and CHAIR where it has boxes).

    captioner evaluate --coco DIR [--split val] [--model DIR] [--beam K] [--out DIR]
    captioner evaluate --karpathy FILE --images DIR [--split test] ...
    captioner evaluate ... --html report/ --attention-dir maps/   # browse the captions

Writes OUT/captions_SPLIT_SEARCH.json (COCO results format) and OUT/scores_SPLIT_SEARCH.json.
"""

import json
import os
import sys

from captioner.cli import ArgumentParser, add_source_options, config_from_args, printable, run
from captioner.commands.common import (
    add_model_options,
    add_output_options,
    attention_pngs,
    check_map_names,
    check_outputs,
    load_task,
    progress_bar,
    unique_stems,
)

PROG = "captioner evaluate"


def add_scoring_options(parser, title="data"):
    """The split to score: --coco DIR or --karpathy FILE --images DIR, --split, and where
    the captions and scores go."""
    scoring = parser.group(title)
    add_source_options(scoring)
    scoring.add_argument("--split", default=None, metavar="NAME",
                         help="the split to score (default: test, or val where the test "
                              "split has no captions, as COCO 2017's has none; said)")
    scoring.add_argument("--out", default="evaluation", metavar="DIR",
                         help="where the captions (COCO results format) and scores are "
                              "written (default: evaluation)")
    scoring.add_argument("--images-anywhere", action="store_true",
                         help="read the images the annotations name outside their image "
                              "folder too (absolute paths, ../); by default such a name is "
                              "refused")
    scoring.add_argument("--limit", type=int, default=None, metavar="N",
                         help="score only the first N images of the split")
    scoring.add_argument("--tokenizer", choices=("auto", "ptb", "treebank", "captioner"),
                         default="auto",
                         help="PTB (Java, as coco-caption), NLTK's Treebank tokenizer (no "
                              "Java), or captioner's own; auto: PTB where Java is installed, "
                              "else Treebank")
    return scoring


def build_parser(prog=PROG):
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                            usage="%(prog)s (--coco DIR | --karpathy FILE --images DIR) "
                                  "[--split NAME] [--model DIR] [--out DIR] [options]")
    add_scoring_options(parser)
    add_model_options(parser)
    add_output_options(parser)
    return parser


def check_args(parser, args):
    """The search config from its options, and the data options' combinations."""
    from captioner.config import SearchConfig
    from captioner.errors import ConfigError
    if args.coco and args.karpathy:
        parser.error("give --coco DIR or --karpathy FILE, not both")
    if args.karpathy and not args.images:
        parser.error("--karpathy needs --images DIR")
    try:
        args.search = config_from_args(SearchConfig, args)
    except ConfigError as error:
        parser.error(str(error))
    args.n_best = args.search.captions  # captions per image: the n-best or the samples
    return args


def parse_args(argv, prog=PROG):
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not (args.coco or args.karpathy):
        parser.error("give the split to score: --coco DIR, or --karpathy FILE --images DIR")
    return check_args(parser, args)


def score_split(args, task):
    """Captions and scores the split ``--split`` of ``--coco DIR`` (or of ``--karpathy
    FILE``) with ``task`` (an ImageCaptioner); writes the captions and scores, the heat maps
    and the report asked for. Exit status: 0, or 1 when images of the split could not be
    read (each named)."""
    from captioner import io
    from captioner.data.coco import CaptionSource
    from captioner.data.images import load_image
    from captioner.errors import ConfigError, DataError
    from captioner.evaluation import format_scores
    from captioner.folders import check_names, mark
    if task.kind != "captioner":
        raise ConfigError(f"{args.model} is a Recurrent Attention Model: it classifies images; "
                          "evaluate scores captioners")
    source = CaptionSource(args.coco, args.karpathy, args.images, args.images_anywhere)
    # a file the annotations name that is missing or broken is skipped, and said
    records, instances = [], None
    if args.split is None:  # test, unless it has no captions to score (COCO 2017's)
        records, instances = source.split("test", required=False, check_files=False)
        args.split = "test"
        val = ([], None) if records else source.split("val", required=False,
                                                      check_files=False)
        if val[0]:
            records, instances = val
            args.split = "val"
            print(f"the test split of {printable(args.coco or args.karpathy)} has no captions "
                  "to score: scoring val (--split NAME chooses)", file=sys.stderr)
    if not records:  # the split asked for, or test without a val: read again for the reason
        records, instances = source.split(args.split, check_files=False)
    if not records:
        raise DataError(f"the {args.split} split of {args.coco or args.karpathy} has no images "
                        "with captions to score")
    records = records[:args.limit] if args.limit else records
    name = f"{args.split}_{args.search.name}"
    check_names(args.out, "evaluation", "--out", [f"captions_{name}.json",
                                                  f"scores_{name}.json"], args.overwrite)
    check_map_names(args, [record.path for record in records])
    training = None
    if args.split != "train":  # for the share of novel captions, where there is a train split
        from captioner.text import tokenize
        train, _ = source.split("train", instances=False, required=False, check_files=False)
        training = [tokenize(caption) for record in train for caption in record.captions] \
            if train else None
    with progress_bar(len(records), f"captioning {args.split}") as progress:
        evaluation = task.evaluate(records, instances, search=args.search,
                                   batch_size=args.batch_size, progress=progress,
                                   tokenizer=args.tokenizer, training=training)
    unreadable = evaluation.notes["unreadable"]
    for why in unreadable.values():
        print(f"error: {printable(why)}", file=sys.stderr)
    if unreadable:
        print(f"skipped {len(unreadable)} of {len(records)} images of the split that cannot "
              "be read (above); the scores are of the other "
              f"{len(records) - len(unreadable)}", file=sys.stderr)
        records = [record for record in records if record.path not in unreadable]
    captions_path = os.path.join(args.out, f"captions_{name}.json")
    scores_path = os.path.join(args.out, f"scores_{name}.json")
    io.write_json(captions_path, evaluation.results)
    data = args.coco or args.karpathy  # as given: a report shared says no more of the disk
    report = {"model": args.model, "data": data,
              "split": args.split, "search": task.search_config(args.search).to_dict(),
              "scores": evaluation.scores, "notes": evaluation.notes}
    io.write_json(scores_path, report)
    mark(args.out, "evaluation")

    def images():  # each image read once, for its heat maps and the report alike
        for record, stem in zip(records, unique_stems([r.path for r in records])):
            image = load_image(record.path)
            if args.attention_dir:
                attention_pngs(args.attention_dir, stem, image,
                               evaluation.captions[record.image_id])
            yield image
    if args.html:
        from captioner.viewer.report import write_report
        write_report(args.html, task, records, instances, evaluation,
                     f"{args.split} split of {data}, {args.search.name} search, model "
                     f"{args.model}", images=images(), root=args.coco or args.images,
                     overwrite=args.overwrite)
    elif args.attention_dir:
        for _ in images():
            pass
    written = [("captions", captions_path), ("scores", scores_path)]
    if args.attention_dir:
        written.append(("heat maps", args.attention_dir))
    if args.html:
        written.append(("report", os.path.join(args.html, "index.html")))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.split}: {len(records)} images, {args.search.name} search, "
              f"tokenizer {evaluation.notes['tokenizer']}")
        print(format_scores(evaluation.scores))
        width = max(len(what) for what, _ in written) + 1
        for what, path in written:
            print(f"{what + ':':<{width}} {printable(path)}")
    return 1 if unreadable else 0


def main(argv=None, prog=PROG):
    """Exit status: 0 scored, 1 scored without some images that could not be read (each
    named), 2 a user mistake (an option, the model folder, the data)."""
    args = parse_args(argv, prog)
    check_outputs(args, scoring=True)
    return score_split(args, load_task(args))


def entry(prog=PROG):
    """The ``captioner evaluate`` command."""
    sys.exit(run(lambda argv: main(argv, prog=prog)))
