"""What every task object shares: it is made from a model folder of its own kind."""

from captioner.errors import ModelError
from captioner.saving import load_model


class Task:
    """Base of the task objects. Subclasses set ``kind`` (the model folder's kind) and
    implement ``from_saved``."""

    kind = None

    @classmethod
    def from_folder(cls, folder):
        """Loads a model folder of this task's kind (``captioner.saving``); ModelError for
        a folder of another kind, or one that does not load."""
        saved = load_model(folder)
        if saved.kind != cls.kind:
            raise ModelError(f"{folder} holds a {saved.kind} model, not a {cls.kind}")
        return cls.from_saved(saved)

    @classmethod
    def from_saved(cls, saved):
        """From what ``captioner.saving.load_model`` read."""
        raise NotImplementedError
