"""What every model kind shares: one configuration dataclass, and a build that runs it.

A model is made from its configuration alone (``get_config`` is that configuration), and
is built by calling it once on a tiny batch, on creation and on load, so a .keras file
restores every weight, whatever the model creates lazily on its first call.
"""

import contextlib

import keras


class ConfiguredModel(keras.Model):
    """Base of the project's models. Subclasses set ``kind`` (the name model folders
    record) and ``config_class`` (a ``captioner.config`` dataclass), and implement
    ``build_by_calling``.

    Args:
        config: a ``config_class`` instance, or its dict (what ``to_dict()`` returns).
    """

    kind = None
    config_class = None

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.model_config = self.config_class.from_dict(config) if isinstance(config, dict) \
            else config

    def build_by_calling(self):
        """Creates every weight by running one tiny batch."""
        raise NotImplementedError

    def get_build_config(self):
        return {"built_by_calling": True}

    def build_from_config(self, config):
        self.build_by_calling()

    def get_config(self):
        return {**super().get_config(), "config": self.model_config.to_dict()}

    @classmethod
    def from_config(cls, config):
        """The model of ``config`` in the dtype policy in force where it is loaded (Keras'
        global one), whatever policy it was trained in: a model trained in mixed
        precision loads as float32, and the other way round."""
        config = {key: value for key, value in config.items() if key != "dtype"}
        return super().from_config(config)


def resolve_dtype_policy(name):
    """The Keras dtype policy a ``TrainConfig.dtype_policy`` names: "auto" is
    mixed_bfloat16 where Keras sees a GPU or TPU, float32 on CPUs."""
    if name != "auto":
        return name
    devices = keras.distribution.list_devices()
    return "mixed_bfloat16" if any(not d.lower().startswith("cpu") for d in devices) \
        else "float32"


@contextlib.contextmanager
def dtype_policy(name):
    """Keras' global dtype policy set to ``name`` (``resolve_dtype_policy``) in the block:
    the layers created or loaded in it compute in that precision."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(resolve_dtype_policy(name))
    try:
        yield keras.config.dtype_policy().name
    finally:
        keras.config.set_dtype_policy(previous)
