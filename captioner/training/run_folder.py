"""The one writer of a run folder's published files: everything in OUT but the checkpoint
is copied or rendered from the newest checkpoint (``captioner.training.checkpoint``), so
a kill at any moment loses nothing that the next resume does not write again::

    OUT/model.keras, vocab.json, domain.json, MODEL_CARD.md, config.json
                                the best epoch's model folder (checkpoint best/), mirrored
    OUT/metrics.json            {"best_epoch", "history": one row per epoch, "test"}
    OUT/training_curves.png     the curves of those rows
    OUT/<name>.json             the state's "run_files" (the unreadable images met so far)
    OUT/.published.json         the model-folder files this run published there

Only the run's own files are removed: a model-folder file that OUT holds because this run
published it (``.published.json`` lists them) and that the best folder no longer has.
"""

import os

from captioner import io
from captioner.domain import FILE as DOMAIN_FILE
from captioner.render import save_curves
from captioner.saving import CARD_FILE, CONFIG_FILE, MODEL_FILE, VOCAB_FILE

METRICS_FILE, CURVES_FILE, PUBLISHED = "metrics.json", "training_curves.png", ".published.json"
# a model folder's files, config.json last: a folder whose config.json is there is whole
MODEL_FOLDER = (MODEL_FILE, VOCAB_FILE, DOMAIN_FILE, CARD_FILE, CONFIG_FILE)


def publish(out, best, state, curves, model_changed=True):
    """Writes OUT's files from a checkpoint: the model folder ``best`` (its files copied,
    config.json last; a model-folder file this run published before and ``best`` lacks is
    removed, so that OUT never mixes two epochs), metrics.json, the curves (``curves``:
    ``render.save_curves``' panels) and the state's run files; each atomically."""
    if model_changed and best is not None:
        present = [name for name in MODEL_FOLDER if os.path.isfile(os.path.join(best, name))]
        listing = os.path.join(out, PUBLISHED)
        before = io.read_json(listing, "list of published files") \
            if os.path.isfile(listing) else []
        for name in present:
            io.copy_file(os.path.join(best, name), os.path.join(out, name))
        for name in set(before if isinstance(before, list) else []) - set(present):
            if name in MODEL_FOLDER and os.path.isfile(os.path.join(out, name)):
                os.remove(os.path.join(out, name))  # an older epoch's, this run's own
        io.write_json(listing, present)
    metrics = {"best_epoch": state["best_epoch"], "history": state["history"]}
    if state.get("test"):
        metrics["test"] = state["test"]
    io.write_json(os.path.join(out, METRICS_FILE), metrics)
    save_curves(os.path.join(out, CURVES_FILE), state["history"], curves)
    for name, data in state.get("run_files", {}).items():
        io.write_json(os.path.join(out, name), data)
