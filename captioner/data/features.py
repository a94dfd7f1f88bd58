"""Feature grids of a frozen encoder, computed once and read from disk ever after.

When the backbone does not train, every epoch would run the same CNN on the same images
to get the same annotation vectors: the decoder can train on stored ones instead, many
times faster (``benchmarks/feature_cache.py``). The store is one ``.npy`` file per
(encoder, image list), memory-mapped so that a data set larger than memory still trains,
and a JSON file beside it that describes it::

    CACHE_DIR/<key>.npy    float (N, H*W, D), row i for image i of the list
    CACHE_DIR/<key>.json   what the key was made of, and the .npy's size; written last,
                           so its presence means the .npy is complete (a .npy of another
                           size is built again)

A store is built under a lock (``.<key>.lock``): a second process wanting the same one
waits and reads it; what a killed build left is removed by the next.

The key is a hash of everything the features depend on: the backbone, its width, the
image size, the backbone's weights (their bytes), and every image file's path, size and
modification time. Another backbone, image size or weights, or an edited image, gives
another key, so stale features are never read; a matching key is reused as it is.
"""

import hashlib
import json
import os
import sys

import numpy as np
from keras import ops

from captioner import io
from captioner.errors import DataError

FORMAT_VERSION = 1


def default_cache_dir():
    """``$XDG_CACHE_HOME/captioner/features`` (``~/.cache/captioner/features``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "captioner", "features")


def weights_fingerprint(layer):
    """A hash of a layer's weights (values, shapes and order)."""
    digest = hashlib.sha256()
    for weight in layer.get_weights():
        digest.update(str(weight.shape).encode())
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def cache_key(encoder, paths, dtype="float32"):
    """(key, description): the hash that names a store, and what went into it."""
    files = []
    for path in paths:
        status = os.stat(path)
        files.append([os.path.abspath(path), status.st_size, status.st_mtime_ns])
    description = {"version": FORMAT_VERSION, "backbone": encoder.backbone_name,
                   "width": encoder.width, "image_size": encoder.image_size, "dtype": dtype,
                   "weights": weights_fingerprint(encoder)}
    digest = hashlib.sha256(json.dumps({**description, "files": files}).encode()).hexdigest()
    return digest[:32], {**description, "images": len(files)}


class FeatureCache:
    """The feature grids of ``paths`` under ``encoder``, built on first use.

    Args:
        encoder: a frozen ``captioner.models.encoder.Encoder`` (its ``fine_tune`` False).
        paths: the image files, in the order of the rows.
        folder: where stores live (``default_cache_dir()``).
        batch_size: images encoded together while building.
        dtype: "float32", or "float16" to halve the disk (the decoder computes in float32).
        progress: show a progress bar while building.

    ``batch(indices)`` returns (float32 (B, H*W, D), ok (B,)); ``built`` says whether this
    instance computed the features (False: they were found on disk). Images that cannot be
    read are skipped (zero rows, ``ok`` False, listed in ``bad`` and in the store's JSON)
    with ``bad_images="skip"``, and raise with ``"error"``.
    """

    input_key = "features"

    def __init__(self, encoder, paths, folder=None, batch_size=32, dtype="float32",
                 progress=True, bad_images="skip"):
        if encoder.fine_tune:
            raise ValueError("Features can only be cached for a frozen encoder "
                             "(fine_tune=False): a training encoder changes them every step.")
        self.paths, self.folder = list(paths), folder or default_cache_dir()
        self.key, description = cache_key(encoder, self.paths, dtype)
        self.path = os.path.join(self.folder, f"{self.key}.npy")
        info_path = os.path.join(self.folder, f"{self.key}.json")
        info = self._complete(info_path)
        self.built = info is None
        if self.built:
            with io.refused_writes(self.folder):
                os.makedirs(self.folder, exist_ok=True)
            with io.file_lock(os.path.join(self.folder, f".{self.key}.lock")):
                info = self._complete(info_path)  # another process may have built it
                self.built = info is None
                if self.built:
                    io.remove_partials(self.folder, prefix=self.key)  # of killed builds
                    bad = self._build(encoder, batch_size, dtype, progress, bad_images)
                    info = {**description, "bad": bad, "bytes": os.path.getsize(self.path)}
                    io.write_json(info_path, info)
        bad = info.get("bad", {})
        self.bad = {int(k): v for k, v in bad.items()}
        if self.bad and bad_images == "error":
            raise DataError(f"{len(self.bad)} image(s) cannot be read, the first: "
                            f"{self.bad[min(self.bad)]}")
        try:  # never a pickle: an array of numbers, mapped
            self.features = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise DataError(f"Feature store {self.path} is not an array of features ({error}): "
                            "delete it and its .json to build it again") from None
        rows, columns = encoder.grid_shape
        expected = (len(self.paths), rows * columns, encoder.feature_dim)
        if tuple(self.features.shape) != expected or self.features.dtype.kind != "f":
            raise DataError(f"Feature store {self.path} holds {self.features.dtype} "
                            f"{tuple(self.features.shape)}, not the float {expected} of "
                            f"{len(self.paths)} images: delete it and its .json to build it "
                            "again")

    def _complete(self, info_path):
        """The store's description if it is complete and intact, else None (a damaged one
        is said, and built again)."""
        if not (os.path.isfile(info_path) and os.path.isfile(self.path)):
            return None
        info = io.read_json(info_path, "feature store")
        size = os.path.getsize(self.path)
        if info.get("bytes", size) != size:
            print(f"warning: feature store {self.path} has {size} bytes, not the "
                  f"{info['bytes']} written: building it again", file=sys.stderr)
            return None
        return info

    def _build(self, encoder, batch_size, dtype, progress, bad_images):
        from tqdm import tqdm

        from captioner.data.dataset import ImageCache
        images = ImageCache(self.paths, encoder.image_size, budget_bytes=0,
                            bad_images=bad_images)
        rows, columns = encoder.grid_shape
        shape = (len(self.paths), rows * columns, encoder.feature_dim)
        with io.atomic_path(self.path) as temporary:
            store = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
            with tqdm(total=len(self.paths), desc="caching features", unit="image",
                      file=sys.stderr, disable=not progress) as bar:
                for start in range(0, len(self.paths), batch_size):
                    chunk = np.arange(start, min(start + batch_size, len(self.paths)))
                    pixels, ok = images.batch(chunk)  # uint8 (B, S, S, 3): the encoder scales
                    grid = ops.convert_to_numpy(encoder(pixels, training=False))  # (B, H, W, D)
                    store[chunk] = grid.reshape(len(chunk), -1, shape[2]) * ok[:, None, None]
                    bar.update(len(chunk))
            store.flush()
            del store
        return {str(index): reason for index, reason in sorted(images.bad.items())}

    def __len__(self):
        return len(self.paths)

    def batch(self, indices):
        """(float32 (B, H*W, D), ok (B,)) of images ``indices``."""
        indices = np.asarray(indices)
        ok = np.array([int(index) not in self.bad for index in indices])
        return np.asarray(self.features[indices], dtype=np.float32), ok
