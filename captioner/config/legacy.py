"""Every migration of an older format, in one place: what older model folders,
checkpoints and config files wrote, turned into today's form before it is read.

- model configs from before the loss section, whose decoder held the loss weights;
- LSTM decoder configs from before ``positions`` (0.4 and earlier), which learned a
  vector per grid cell;
- training configs from before the sections, one flat dict;
- checkpoint states from before the one epoch loop, which kept the best CIDEr-D or error
  rather than the objective.

A new format adds its migration here, with the release that wrote the old one.
"""

from captioner.errors import ConfigError


def model_config(data, loss_fields):
    """A ModelConfig dict, with loss weights found in its decoder (``loss_fields``: the
    loss section's field names) moved to the loss section, and an LSTM decoder without
    ``positions`` given the per-cell vectors it was built with."""
    if not (isinstance(data, dict) and isinstance(data.get("decoder"), dict)):
        return data
    decoder = dict(data["decoder"])
    if decoder.get("kind", "lstm") == "lstm" and "positions" not in decoder:
        decoder["positions"] = "cells"
        data = {**data, "decoder": decoder}
    moved = {name: decoder.pop(name) for name in loss_fields if name in decoder}
    if not moved:
        return data
    if "loss" in data:
        raise ConfigError("loss weights in both the decoder and the loss config: "
                          f"{', '.join(sorted(moved))}")
    return {**data, "decoder": decoder, "loss": moved}


def is_flat_train_config(data, top_fields):
    """Whether ``data`` is a TrainConfig dict from before the sections: no section, and a
    key that is not one of today's top-level fields (``top_fields``)."""
    return (isinstance(data, dict) and not any(isinstance(v, dict) for v in data.values())
            and any(key not in top_fields for key in data))


def checkpoint_state(state):
    """A checkpoint's state with its "best_objective" (lower is better), which runs from
    before the one epoch loop kept as "best_cider" or "best_error"."""
    if "best_objective" not in state:
        state["best_objective"] = (-state["best_cider"] if "best_cider" in state
                                   else state.get("best_error", float("inf")))
    return state
