"""captioner: Show, Attend and Tell in Keras 3, and the Recurrent Attention Model.

The public API::

    import captioner
    model = captioner.load_model()                        # the bundled model, from anywhere
    model = captioner.load_model("runs/mine")             # an ImageCaptioner (or RAMClassifier)
    results = model.caption(["photo.jpg"], search=captioner.SearchConfig(beam=3, n_best=2))
    results[0].caption, results[0].best.alphas            # words, attention (n, H, W)
    captioner.train("runs/mine", coco="data/coco")        # configs + data -> model folder
    captioner.resume("runs/mine", epochs=60)              # continue it from its checkpoint
    captioner.train("runs/tf", coco="data/coco", model_config=captioner.ModelConfig(
        decoder=captioner.TransformerConfig(layers=3)))   # a Transformer decoder
    model.caption(["photo.jpg"], heads=True)[0].best.heads  # its maps (n, layers, heads, H, W)

``load_model`` returns the task object of the folder (``captioner.tasks``): a captioner
with its vocabulary, domain summary and compiled search, or a RAM with its class names.
The names are imported on first use, so ``import captioner`` does not start Keras. Where
TensorFlow is not installed and no backend is named, Keras is pointed at JAX.
"""

from captioner.version import __version__  # noqa: F401  (imports nothing else)

__all__ = ["load_model", "caption", "train", "train_ram", "resume", "ImageCaptioner",
           "RAMClassifier", "Caption", "ImageCaptions", "Classification",
           "ModelConfig", "EncoderConfig", "LSTMDecoderConfig", "TransformerConfig",
           "TrainConfig", "RAMConfig", "SearchConfig"]

_NAMES = {"load_model": "load"}  # the public name -> the name in its home
_HOMES = {"load_model": "captioner.tasks", "caption": "captioner.tasks",
          "ImageCaptioner": "captioner.tasks", "RAMClassifier": "captioner.tasks",
          **{name: "captioner.results" for name in ("Caption", "ImageCaptions",
                                                    "Classification")},
          "train": "captioner.training.run", "train_ram": "captioner.training.run",
          "resume": "captioner.training.run",
          **{name: "captioner.config" for name in (
              "ModelConfig", "EncoderConfig", "LSTMDecoderConfig", "TransformerConfig",
              "TrainConfig", "RAMConfig", "SearchConfig",
              "DecoderConfig", "RamConfig")}}  # the last two: their names in 0.4


def _default_backend():
    """Keras' backend where none is named (KERAS_BACKEND): its own default, TensorFlow, when
    installed, else JAX (``pip install .[jax]`` installs no TensorFlow)."""
    import importlib.util
    import os
    if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None \
            and importlib.util.find_spec("jax") is not None:
        os.environ["KERAS_BACKEND"] = "jax"


_default_backend()


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'captioner' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(_HOMES[name]), _NAMES.get(name, name))


def __dir__():
    return sorted(list(globals()) + __all__)
