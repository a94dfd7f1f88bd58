"""The Recurrent Attention Model's configuration (``RAMConfig``)."""

import dataclasses
from typing import Literal, Optional

from captioner.config.base import Config, check_positive, derived, option
from captioner.errors import ConfigError

RAM_EPOCHS = 200  # train.py --task ram's default: on 4,000 translated MNIST digits a
                  # 6-glimpse RAM has 14 % test error after 30 epochs, 4.6 % after 200
                  # (the README's benchmark)


@dataclasses.dataclass
class RAMConfig(Config):
    """The Recurrent Attention Model (captioner.models.ram); defaults after Mnih et al. 2014."""
    title = "recurrent attention model"
    MOST = {"height": 4096, "width": 4096, "channels": 4, "classes": 100_000, "glimpses": 256,
            "patch": 512, "scales": 8, "glimpse_hidden": 8192, "glimpse_units": 8192,
            "core_units": 8192}
    height: int = derived(60, "the input's size: the translated-digits canvas")
    width: int = derived(60, "the input's width")
    channels: int = derived(1, "the input's channels (1: grey)")
    classes: int = derived(10, "classes the model tells apart")
    glimpses: int = option(6, "N, glimpses per image")
    patch: int = option(12, "g: every retina patch is g x g")
    scales: int = option(3, "k: patches of side g, 2g, 4g, ... around each location")
    glimpse_hidden: int = option(128, "the \"what\" and \"where\" layers (the paper: 128)")
    glimpse_units: int = option(256, "g_t (the paper: 256)")
    core_units: int = option(256, "the LSTM core's state")
    location_std: float = option(
        0.1,
        "sigma of the Gaussian location policy, in [-1, 1] units")
    first_glimpse: Literal["random", "centre"] = option(
        "random",
        "in training, l_1 uniform in [-1, 1]^2 (or the centre); inference, and a single "
        "glimpse, start at the centre")
    reinforce_weight: float = option(1.0, "weight of the REINFORCE term")
    reward: Literal["correct", "log_likelihood"] = option(
        "correct",
        "the locations' reward: 1 for a right answer (Mnih et al. 2014), or log p(true "
        "class), as in the variational bound of Ba et al. 2015 (graded)")
    seed: Optional[int] = derived(None, "seeds the location samples")

    def check(self):
        check_positive(self, "height", "width", "channels", "glimpses", "patch", "scales",
                        "glimpse_hidden", "glimpse_units", "core_units")
        if self.classes < 2:
            raise ConfigError(f"classes must be at least 2. Received: classes={self.classes!r}")
        if not self.location_std > 0:
            raise ConfigError(f"location_std must be > 0. Received: {self.location_std}")
        if self.reinforce_weight < 0:
            raise ConfigError(f"reinforce_weight must be >= 0. Received: {self.reinforce_weight}")


RamConfig = RAMConfig  # its name in 0.4, kept for one release
