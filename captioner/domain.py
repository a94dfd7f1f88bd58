"""Whether an image is like the images a captioner was trained on.

A captioner trained on shapes will still caption a photograph, fluently and wrongly. The
model folder's ``domain.json`` summarises its training images as its encoder sees them:
each image's statistic is the mean and the standard deviation over the grid cells of its
annotation vectors (2 D numbers); their mean, the top principal components and their
variances, and the variance left over. An image's distance is the Mahalanobis distance
in that principal subspace plus the leftover part over the leftover variance, divided by
the statistic's size (so that training images lie near 1). The threshold is ``margin``
times the larger of the training images' 99.9th percentile and the held-out (validation)
images' largest distance: the data's own test split passes, and an image past it is
marked out of domain (``caption.py`` text, JSON and heat-map title).

    captioner domain --model DIR --coco DATA [--split train] [--held-out val]

writes ``domain.json`` for a model folder trained before it existed; ``train.py`` writes
it at the end of training (``Domain.save`` / ``Domain.read``).
"""

import dataclasses
import os
import sys

import numpy as np

FORMAT = "captioner-domain/1"
FILE = "domain.json"  # in a model folder


def image_statistics(model, images):
    """(N, 2 D) float64: per image, the mean and the standard deviation over the grid of
    the captioner's annotation vectors (``captioner.search.feature_statistics``, which the
    compiled search also returns). ``images``: uint8 (N, S, S, 3) model inputs."""
    from keras import ops

    from captioner.search import feature_statistics
    return joined_statistics(*(ops.convert_to_numpy(value)
                               for value in feature_statistics(model.encode(images))))


def joined_statistics(mean, spread):
    """The statistic of each image: its mean and standard deviation (N, D) each, joined
    (N, 2 D) float64."""
    return np.concatenate([np.asarray(mean, np.float64), np.asarray(spread, np.float64)], -1)


@dataclasses.dataclass
class Domain:
    """See the module docstring. ``distance(statistics)`` and ``flags(statistics)``."""
    mean: np.ndarray         # (F,)
    components: np.ndarray   # (k, F), orthonormal rows
    variances: np.ndarray    # (k,)
    residual_variance: float
    threshold: float
    images: int = 0          # how many images the summary is of

    @classmethod
    def fit(cls, statistics, held_out=None, components=64, margin=1.25):
        """The summary of ``statistics`` (N, F); the threshold from them and ``held_out``."""
        statistics = np.asarray(statistics, np.float64)
        count, size = statistics.shape
        if count < 3:
            raise ValueError(f"a domain needs at least 3 images. Received: {count}")
        mean = statistics.mean(0)
        _, singular, rows = np.linalg.svd(statistics - mean, full_matrices=False)
        variances = singular ** 2 / (count - 1)
        k = int(min(components, size - 1, count - 2))
        floor = max(float(variances[0]) * 1e-6, 1e-12)  # no division by a zero variance
        residual = float(max(variances[k:].sum() / max(size - k, 1), floor))
        domain = cls(mean, rows[:k], np.maximum(variances[:k], floor), residual, np.inf, count)
        reference = np.quantile(domain.distance(statistics), 0.999)
        if held_out is not None and len(held_out):
            reference = max(reference, float(domain.distance(held_out).max()))
        domain.threshold = float(margin * reference)
        return domain

    def distance(self, statistics):
        """(N,) distances of image statistics (N, F) from the training images."""
        centred = np.asarray(statistics, np.float64) - self.mean
        projected = centred @ self.components.T  # (N, k)
        leftover = ((centred - projected @ self.components) ** 2).sum(-1)
        total = (projected ** 2 / self.variances).sum(-1) + leftover / self.residual_variance
        return np.sqrt(total / self.mean.size)

    def flags(self, statistics):
        """Per image {"distance", "out_of_domain"}."""
        return [{"distance": float(d), "out_of_domain": bool(d > self.threshold)}
                for d in self.distance(statistics)]

    def to_dict(self):
        def short(array):  # 7 significant digits: float32's, in a third of the text
            return np.vectorize(lambda v: float(f"{v:.7g}"), otypes=[float])(array).tolist()
        return {"format": FORMAT, "statistic": "mean and std over the grid of the "
                "annotation vectors", "images": self.images, "threshold": self.threshold,
                "mean": short(self.mean), "components": short(self.components),
                "variances": short(self.variances),
                "residual_variance": self.residual_variance}

    def save(self, folder):
        """Writes this summary into a model folder (atomically)."""
        from captioner import io
        io.write_json(os.path.join(folder, FILE), self.to_dict(), indent=None)

    @classmethod
    def read(cls, folder):
        """The summary of a model folder, or None where it has none."""
        from captioner import io
        path = os.path.join(folder, FILE)
        if not os.path.isfile(path):
            return None
        return cls.from_dict(io.read_json(path, "domain summary"), path)

    @classmethod
    def from_dict(cls, data, where="domain.json"):
        from captioner.errors import ModelError
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
            domain = cls(np.asarray(data["mean"], np.float64),
                         np.asarray(data["components"], np.float64).reshape(
                             -1, len(data["mean"])),
                         np.asarray(data["variances"], np.float64),
                         float(data["residual_variance"]), float(data["threshold"]),
                         int(data.get("images", 0)))
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise ModelError(f"{where} is not a domain summary: {error}") from None
        if len(domain.variances) != len(domain.components):
            raise ModelError(f"{where}: {len(domain.variances)} variances for "
                             f"{len(domain.components)} components")
        return domain


def summarise(model, paths, held_out_paths=(), limit=5000, seed=0, batch_size=64,
              progress=False, margin=1.25):
    """The Domain of a captioner's training images (``paths``; at most ``limit`` of them,
    drawn with ``seed``), thresholded with ``held_out_paths`` too; None with fewer than 3
    readable training images. Unreadable images are left out."""
    paths = list(paths)
    if len(paths) > limit:
        chosen = np.random.default_rng(seed).choice(len(paths), limit, replace=False)
        paths = [paths[i] for i in sorted(chosen)]
    train = _statistics_of(model, paths, batch_size, progress, "domain: training images")
    if len(train) < 3:
        return None
    held_out = _statistics_of(model, list(held_out_paths), batch_size, progress,
                              "domain: held-out images")
    return Domain.fit(train, held_out, margin=margin)


def _statistics_of(model, paths, batch_size, progress, description):
    from tqdm import tqdm

    from captioner.data.images import Unreadable, load_resized, read_batch
    size = model.model_config.encoder.image_size
    rows = []
    for start in tqdm(range(0, len(paths), batch_size), desc=description, unit="batch",
                      disable=not progress or len(paths) <= batch_size, file=sys.stderr):
        # an unreadable image is counted where training reads it; a summary does without it
        images = [image for image in read_batch(paths[start:start + batch_size],
                                                lambda path: load_resized(path, size), "report")
                  if not isinstance(image, Unreadable)]
        if images:
            rows.append(image_statistics(model, np.stack(images)))
    return np.concatenate(rows) if rows else np.zeros((0, 2 * model.encoder.feature_dim))
