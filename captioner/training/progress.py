"""A tqdm progress bar for ``fit()``, on standard error."""

import sys

import keras
from tqdm import tqdm


class ProgressBar(keras.callbacks.Callback):
    """One bar per epoch with the running loss; ``description`` is e.g. "epoch 3/20"."""

    def __init__(self, steps, description=""):
        super().__init__()
        self.steps, self.description, self.bar = steps, description, None

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = tqdm(total=self.steps, desc=self.description, unit="batch", file=sys.stderr,
                        dynamic_ncols=True, leave=True)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}")

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()
