"""What every model kind shares: one configuration dataclass, and a build that runs it.

A model is made from its configuration alone (``get_config`` is that configuration), and
is built by calling it once on a tiny batch, on creation and on load, so a .keras file
restores every weight, whatever the model creates lazily on its first call.
"""

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
