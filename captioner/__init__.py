"""captioner: Show, Attend and Tell in Keras 3, and the Recurrent Attention Model.

The public API::

    import captioner
    model = captioner.load_model("assets/model")          # any model folder
    results = captioner.caption(model, ["photo.jpg"], beam=3, n_best=2)
    results[0]["caption"], results[0]["alphas"]           # words, attention (n, H, W)
    captioner.train("runs/mine", coco="data/coco")        # configs + data -> model folder

``load_model`` returns a ``captioner.saving.SavedModel`` (kind, Keras model, vocabulary
or class names, config). The names are imported on first use, so ``import captioner``
does not start Keras.
"""

__all__ = ["load_model", "caption", "train", "train_ram", "ModelConfig", "EncoderConfig",
           "DecoderConfig", "TrainConfig", "RamConfig"]

_HOMES = {"load_model": "captioner.saving", "caption": "captioner.inference",
          "train": "captioner.training.captioning", "train_ram": "captioner.training.ram",
          **{name: "captioner.config" for name in ("ModelConfig", "EncoderConfig",
                                                    "DecoderConfig", "TrainConfig",
                                                    "RamConfig")}}


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'captioner' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__():
    return sorted(list(globals()) + __all__)
