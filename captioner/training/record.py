"""The run record: what a training run was asked to do, kept in every checkpoint's state,
so that ``captioner train --resume DIR`` (``captioner.training.run.resume``) rebuilds the
run from it without its command line.

The record holds the data sources (absolute paths), the model and training configurations
as given (before the data derive the vocabulary size and the like), the feature cache's
options, the model folder it started from (``--init``) and the command that started it.
What a resume may change is ``TrainConfig.RESUMABLE``'s sections, where the features are
cached, and where the data are now (``relocate``): nothing else.
"""

import dataclasses
import os

from captioner import io
from captioner.errors import ConfigError

# The data options that name files or folders, per task: a moved data folder is pointed to
# again with the same option.
DATA_PATHS = {"caption": ("coco", "karpathy", "images"), "ram": ("image_folder",)}


def absolute(path):
    return None if path is None else os.path.abspath(os.fspath(path))


@dataclasses.dataclass
class RunRecord:
    """``task``: "caption" or "ram". ``data``: the data options of ``train`` (coco,
    karpathy, images, splits) or of ``train_ram`` (digits, digit_source, canvas,
    clutter_pieces, image_folder, image_size), paths absolute. ``model_config``,
    ``train_config``: the configurations' dicts. ``features``: the feature cache's
    options (``feature_cache``, ``feature_dir``, ``feature_dtype``). ``init``: the model
    folder it started from; ``overrides``: the loss weights set anew for it. ``command``:
    what started it (for the model card)."""
    task: str
    data: dict
    model_config: dict
    train_config: dict
    features: dict = dataclasses.field(default_factory=dict)
    init: str = None
    overrides: dict = dataclasses.field(default_factory=dict)
    command: str = ""

    def __post_init__(self):
        for name in DATA_PATHS.get(self.task, ()):
            self.data[name] = absolute(self.data.get(name))
        self.init = absolute(self.init)
        if self.features.get("feature_dir"):
            self.features["feature_dir"] = absolute(self.features["feature_dir"])

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data, where="run record"):
        """A RunRecord from its dict; ConfigError for anything else (a damaged state)."""
        kinds = {field.name: field.type for field in dataclasses.fields(cls)}
        if not isinstance(data, dict) or not {"task", "data"} <= set(data) \
                or set(data) - set(kinds) or data["task"] not in DATA_PATHS or any(
                    not isinstance(value, kinds[key]) for key, value in data.items()
                    if value is not None):
            raise ConfigError(f"{where} is damaged")
        return cls(**data)

    def relocate(self, out, **paths):
        """Points the data options to where the data are now (``paths``: {option: path},
        None where not given); a recorded path that is gone is one ConfigError naming it
        and the option that points to the new place."""
        for name in DATA_PATHS.get(self.task, ()):
            if paths.get(name) is not None:
                self.data[name] = absolute(paths[name])
            elif self.data.get(name) and not os.path.exists(self.data[name]):
                raise ConfigError(
                    f"--resume {out}: the run's data were read from {self.data[name]}, which is "
                    f"not there any more; if it moved, give --{name.replace('_', '-')} with its "
                    "new place (the training data are checked to be the same)")
        unknown = sorted(name for name, value in paths.items()
                         if value is not None and name not in DATA_PATHS.get(self.task, ()))
        if unknown:
            raise ConfigError(f"--resume {out}: a {self.task} run reads no "
                              f"{', '.join('--' + name.replace('_', '-') for name in unknown)}")


def read_record(out):
    """The RunRecord in the newest checkpoint of the run in ``out``; None where its
    checkpoints were written before they held one (``read_state`` gives their state);
    ConfigError where there is no checkpoint."""
    state = read_state(out)
    return RunRecord.from_dict(state["record"], f"--resume {out}: its checkpoint's run record") \
        if "record" in state else None


def read_state(out):
    """The state of the newest checkpoint of ``out`` (read without verifying it: the
    resumed run does); ConfigError where there is none."""
    from captioner.training.checkpoint import CHECKPOINT_DIR, POINTER, STATE, check_state
    if not os.path.isdir(out):
        raise ConfigError(f"--resume {out}: no such folder")
    pointer = os.path.join(out, CHECKPOINT_DIR, POINTER)
    if not os.path.isfile(pointer):
        raise ConfigError(
            f"--resume {out}: it holds no checkpoint that records its run (none written yet, "
            "or the run is older): give its options again with --resume, e.g. "
            f"`captioner train --coco DIR ... --out {out} --resume`")
    found = io.read_json(pointer, "checkpoint pointer")
    folder = found.get("folder") if isinstance(found, dict) else None
    if not isinstance(folder, str) or os.sep in folder or folder.startswith("."):
        raise ConfigError(f"--resume {out}: {pointer} does not name a checkpoint folder")
    path = os.path.join(out, CHECKPOINT_DIR, folder, STATE)
    state = io.read_json(path, "checkpoint state")
    if not isinstance(state, dict):
        raise ConfigError(f"--resume {out}: the checkpoint's state.json is not a JSON object")
    check_state(state, path)
    return state
