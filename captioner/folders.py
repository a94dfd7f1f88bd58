"""Which folders a command may write into, and which of their entries are its own.

Every command that writes a folder (``train --out``, ``synth --out``, ``export --out``,
``--html``) claims it first, before any work (``claim``): a folder that is new, empty, or
of the command's own kind (``KINDS``: it holds the kind's mark, or, written before marks,
the files that kind is recognised by). Anything else is refused in one line that names
what is there and the flag that allows it (``--overwrite``), which replaces only the
kind's own entries (``KINDS[kind].own``): nothing else in the folder is ever changed or
removed. Heat maps (``--attention-dir``) and evaluations (``evaluate --out``) only add
named files, so any folder takes them; ``check_names`` refuses, before any work, a name
that is there already and not theirs.

A link to a folder is followed at the claim: the command writes into the link's target,
and a link to nothing or to a file is refused there, not after the work.

    out = claim(args.out, "run", "--out", overwrite=args.overwrite)
    ...
    mark(out, "run")
"""

import dataclasses
import fnmatch
import os

from captioner.errors import OutputError
from captioner.io import check_output_folder, write_text
from captioner.text import printable

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def bundled_model_folder():
    """The bundled default model's folder: inside the installed package
    (``captioner/assets/model``), or the repository's ``assets/model``."""
    installed = os.path.join(_PACKAGE, "assets", "model")
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(_PACKAGE), "assets", "model")


SHOWN = 3  # entries named in a refusal


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of output folder: what it is called (with its article), its mark (an empty
    file), the entries (names or patterns) that make a folder of this kind from before
    marks, and the entries it owns, which a command of this kind may replace."""
    label: str
    mark: str
    recognised_by: tuple
    own: tuple
    adds: bool = False  # adds named files beside others: only those names are checked

    def owns(self, name):
        return name == self.mark or any(fnmatch.fnmatchcase(name, pattern)
                                        for pattern in self.own)


KINDS = {
    "run": Kind("a training run", ".captioner-run",
                ("checkpoint/latest.json", "checkpoint/state.json", ".published.json"),
                ("model.keras", "vocab.json", "domain.json", "MODEL_CARD.md", "config.json",
                 "classes.json", "metrics.json", "training_curves.png", ".published.json",
                 "skipped_images.json", "checkpoint", ".lock", ".*.partial-*")),
    "data": Kind("a data set written by captioner synth", ".captioner-data",
                 ("dataset_synthetic.json",),
                 ("annotations", "train2017", "val2017", "test2017", "dataset_synthetic.json",
                  ".*.partial-*")),
    "export": Kind("an export", ".captioner-export", (),
                   ("saved_model.pb", "variables", "assets", "fingerprint.pb", "model.onnx",
                    "model.tflite",
                    "vocab.json", "MODEL_CARD.md", ".*.partial-*")),
    "viewer": Kind("a viewer", ".captioner-viewer", (),
                   ("index.html", "data", "images", ".*.partial-*")),
    "evaluation": Kind("an evaluation folder", ".captioner-evaluation", ("scores_*.json",),
                       ("captions_*.json", "scores_*.json", ".*.partial-*"), adds=True),
    "maps": Kind("a heat-map folder", ".captioner-maps", (),
                 ("*_attention.png", "*_attention_*.png", "*_glimpses.png",
                  ".*.partial-*"), adds=True),
}


def is_kind(folder, kind):
    """Whether ``folder`` is a folder of ``kind``: it holds the kind's mark, or, written
    before marks, an entry that kind was recognised by. A model folder is not a run: its
    file names are a run's, but no run wrote them there."""
    spec = KINDS[kind]
    if os.path.isfile(os.path.join(folder, spec.mark)):
        return True
    names = os.listdir(folder)
    return any(os.path.exists(os.path.join(folder, entry)) if "/" in entry
               else fnmatch.filter(names, entry) for entry in spec.recognised_by)


def foreign_entries(folder, kind):
    """The entries of ``folder`` that a folder of ``kind`` does not own, sorted."""
    return sorted(name for name in os.listdir(folder) if not KINDS[kind].owns(name))


def claim(path, kind, option, overwrite=False):
    """The folder a command of ``kind`` writes for ``option`` ``path``, checked before any
    work: ``path``, or where the link ``path`` points. Raises OutputError (one line) for a
    folder that cannot be written (``io.check_output_folder``), a link to nothing or to a
    file, and a folder that holds entries not of this kind, unless ``overwrite`` (then only
    the kind's own entries are replaced)."""
    path = os.fspath(path)
    target = os.path.abspath(path)
    if os.path.islink(path):
        target = os.path.realpath(path)
        if not os.path.exists(target):
            raise OutputError(f"{option} {printable(path)} is a link to "
                              f"{printable(target)}, which is not there")
    check_output_folder(target, option)
    if not os.path.isdir(target) or overwrite or KINDS[kind].adds:
        return target
    entries = sorted(os.listdir(target))
    if not entries or is_kind(target, kind):
        return target
    raise OutputError(
        f"{option} {printable(path)} holds files that are not {KINDS[kind].label} "
        f"({_listed(foreign_entries(target, kind) or entries)}); choose a new or empty "
        "folder, or add --overwrite to replace only captioner's own files there")


def check_names(folder, kind, option, names, overwrite=False):
    """Before any work: OutputError (one line) where a file a command of ``kind`` is about
    to write into ``folder`` (``names``) is there already and is not its own (the folder
    is not of that kind), unless ``overwrite``. For the kinds that add named files beside
    others (``Kind.adds``: heat maps, evaluations), which any folder may take."""
    if overwrite or not os.path.isdir(folder) or is_kind(folder, kind):
        return
    taken = sorted(set(names) & set(os.listdir(folder)))
    if taken:
        raise OutputError(f"{option} {printable(folder)} already holds {_listed(taken)}, "
                          "which captioner did not write there; choose another folder, or "
                          "add --overwrite to replace them")


def _listed(names):
    """The first ``SHOWN`` of ``names``, printable, and how many more."""
    return ", ".join(printable(name) for name in names[:SHOWN]) + (
        f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def mark(folder, kind):
    """Marks ``folder`` as a folder of ``kind`` (what ``claim`` accepts next time)."""
    path = os.path.join(folder, KINDS[kind].mark)
    if not os.path.isfile(path):
        write_text(path, "")
