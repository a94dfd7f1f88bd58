"""What ``captioner caption`` and ``captioner evaluate`` share: the model and output
options, checking the outputs, loading the model, and writing heat maps."""

import os
import sys

from captioner.cli import add_config_options, import_keras_quietly
from captioner.commands import default_model_dir


def add_model_options(parser):
    """--model, --batch-size and the search options (captioning and scoring alike)."""
    from captioner.config import SearchConfig
    model = parser.group("model")
    model.add_argument("--model", action="append", dest="models", metavar="DIR",
                       help="model folder (default: the bundled model, which knows only "
                            "synthetic shapes); given more than once, the models' ensemble: "
                            "their word probabilities averaged at each step (one vocabulary)")
    model.add_argument("--batch-size", type=int, default=16, metavar="N",
                       help="images decoded together (default: 16)")
    add_config_options(parser, SearchConfig, "search")


def add_output_options(parser):
    """--json, --attention-dir and --html."""
    output = parser.group("output")
    output.add_argument("--json", action="store_true",
                        help="print one JSON document and nothing else on standard output")
    output.add_argument("--attention-dir", metavar="DIR",
                        help="write one PNG per image and hypothesis: a panel per word with "
                             "its attention map (a RAM: the glimpse path and its patches)")
    output.add_argument("--html", metavar="DIR",
                        help="write a page to open in a browser (DIR/index.html, no network "
                             "needed): each word's attention over the image; scoring a split, "
                             "its scores and every image's captions and objects")
    output.add_argument("--overwrite", action="store_true",
                        help="write the outputs into folders that hold other files too, "
                             "replacing only captioner's own files there")
    return output


OUTPUTS = (("attention_dir", "--attention-dir", "maps"), ("html", "--html", "viewer"),
           ("out", "--out", "evaluation"))


def check_outputs(args, scoring):
    """Every output folder named is claimed before any work (``captioner.folders.claim``):
    one line, not a traceback, for one that cannot be written or holds files of a user's;
    a link is replaced by the folder it points to, two options naming one folder are
    refused."""
    from captioner.errors import OutputError
    from captioner.folders import claim
    from captioner.text import printable
    claimed = {}
    for dest, option, kind in OUTPUTS:
        folder = getattr(args, dest, None) if dest != "out" or scoring else None
        if folder:
            path = claim(folder, kind, option, overwrite=args.overwrite)
            if path in claimed:
                raise OutputError(f"{claimed[path]} and {option} name one folder "
                                  f"({printable(folder)}); give each its own")
            claimed[path] = option
            setattr(args, dest, path)


def model_folders(args):
    """The --model folders given (the bundled model if none); ``args.model`` names them."""
    folders = getattr(args, "models", None) or [default_model_dir()]
    args.model = " + ".join(folders)
    return folders


def load_task(args):
    """The model folder's task object (``captioner.tasks``), its search options checked."""
    import_keras_quietly()
    from captioner import tasks
    task = tasks.load(model_folders(args))
    if task.kind == "captioner":  # a word --ban names that the model does not have: now
        from captioner.search import banned_ids
        banned_ids(args.search, task.vocabulary)
    if args.search.grounded and getattr(task.model, "grounding", None) is None:
        from captioner.errors import ModelError
        raise ModelError(f"--grounded needs a model with a grounding head; {args.model} has "
                         "none (train it where the data has boxes, with --grounding)")
    return task


def unique_stems(paths):
    """A distinct file-name stem per path: photo, photo_2, ... for same-named files (a
    suffixed stem taken already, by a file named so, gets the next number)."""
    used, stems = set(), []
    for path in paths:
        stem = base = os.path.splitext(os.path.basename(path))[0]
        number = 1
        while stem in used:
            number += 1
            stem = f"{base}_{number}"
        used.add(stem)
        stems.append(stem)
    return stems


def map_name(stem, rank=1):
    """The heat-map file of a caption of rank ``rank`` of the image ``stem``."""
    return f"{stem}_attention{'' if rank == 1 else f'_{rank}'}.png"


def check_map_names(args, paths):
    """Before any work: the heat maps of ``paths`` (and a RAM's glimpse paths) would not
    replace a file in ``--attention-dir`` that captioner did not write."""
    if args.attention_dir:
        from captioner.folders import check_names
        names = [name for stem in unique_stems(paths) for name in
                 [map_name(stem, rank) for rank in range(1, args.n_best + 1)]
                 + [f"{stem}_glimpses.png"]]
        check_names(args.attention_dir, "maps", "--attention-dir", names, args.overwrite)


def map_path(folder, name):
    """Where heat map ``name`` goes in ``folder``, which is made and marked as holding
    heat maps (``captioner.folders``) first."""
    from captioner.folders import mark
    os.makedirs(folder, exist_ok=True)
    mark(folder, "maps")
    return os.path.join(folder, name)


def attention_pngs(folder, stem, image, captions, warning=None):
    """Writes one attention figure per caption (``captioner.tasks.Caption``); returns
    their paths."""
    from captioner.render import save_attention_figure
    paths = []
    for rank, caption in enumerate(captions, start=1):
        path = map_path(folder, map_name(stem, rank))
        save_attention_figure(path, image, caption.words, caption.alphas,
                              caption.probabilities, chosen_cells=caption.cells,
                              warning=warning)
        paths.append(path)
    return paths


def progress_bar(total, description):
    from tqdm import tqdm
    return tqdm(total=total, desc=description, unit="image", file=sys.stderr,
                disable=total < 4)
