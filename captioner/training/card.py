"""The model card of a training run, rendered from data: what the trainer says about its
model (a :class:`CardFacts`) and the checkpoint's state (the history, the best epoch, the
test scores, where training ran). Nothing edits a card after it is written: a new state
renders a new card.
"""

import collections
import dataclasses
import os

import keras


@dataclasses.dataclass
class CardFacts:
    """What a trainer says about its model: the card's ``title``, a ``summary`` paragraph,
    ``sections`` ((heading, its lines) each: what it is for, its limitations), the
    ``command`` that made it, the ``details`` lines and the ``selection`` (what picked the
    best epoch)."""
    title: str
    summary: str
    command: str
    details: list
    selection: str
    sections: tuple = ()


def training_machine():
    """Where training runs, for the model card: "TensorFlow backend, 1 x CPU (2 CPU
    cores)"."""
    devices = collections.Counter(d.split(":")[0].upper()
                                  for d in keras.distribution.list_devices())
    names = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
    return (f"{names.get(keras.backend.backend(), keras.backend.backend())} backend, "
            + ", ".join(f"{n} x {kind}" for kind, n in sorted(devices.items()))
            + f" ({os.cpu_count()} CPU cores)")


def score_table(row):
    """The float entries of ``row`` as a Markdown table."""
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {key} | {value:.4f} |" for key, value in row.items() if isinstance(value, float)]
    return "\n".join(lines)


def render(facts, state):
    """The model card (Markdown) of ``facts`` at the checkpoint ``state``: its best
    epoch's scores, and the test split's where the run has been scored on one
    (``state["test"]``, ``state["test_description"]``)."""
    best = next(row for row in state["history"] if row["epoch"] == state["best_epoch"])
    lines = [f"# {facts.title}", "", facts.summary, ""]
    for heading, body in facts.sections:
        lines += [f"## {heading}", "", *body, ""]
    lines += ["## How it was made", "", "```", facts.command, "```", ""]
    lines += [f"- {line}" for line in facts.details]
    lines += [f"- trained on: {state.get('machine') or training_machine()}",
              f"- this is epoch {state['best_epoch']}, the best by {facts.selection}",
              f"- wall time to this epoch: {state['wall_time'] / 60:.1f} min", "",
              "## Scores (best epoch)", "", score_table(best)]
    if state.get("test"):
        lines += ["", f"## Test split ({state.get('test_description', '')})", "",
                  score_table(state["test"])]
    return "\n".join(lines) + "\n"
