"""Training a decoder on a frozen backbone: re-running the CNN every epoch vs cached features.

    python -m benchmarks.feature_cache [--backbone mobilenet_v2] [--image-size 128]
                                       [--images 512] [--epochs 3] [--data data/synthetic]

Both runs train the same captioner (frozen backbone, soft-attention decoder) with fit() on
the same batches for the same epochs; one feeds images through the encoder at every step,
the other reads the encoder's output from a FeatureCache built once beforehand. Prints
captions per second per epoch for each, the one-off cost of building the cache, and the
speed-up. The backbone's weights are random (no download here); that changes no timing.

Internal imports: the feature cache and the batches, which is what it measures.
"""

import argparse
import os
import platform
import tempfile
import time

from captioner.cli import import_keras_quietly


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=512, help="training images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", default="data/synthetic",
                        help="COCO-layout data (the synthetic set is generated if missing)")
    return parser.parse_args()


def timed_epochs(model, batches, epochs):
    seconds = []
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        started = time.perf_counter()
        model.fit(batches, epochs=1, verbose=0)
        seconds.append(time.perf_counter() - started)
    return seconds


def main():
    args = parse_args()
    import_keras_quietly()
    import keras

    from captioner.config import preset
    from captioner.data.coco import load_coco_split
    from captioner.data.dataset import CaptionBatches
    from captioner.data.features import FeatureCache
    from captioner.data.synthetic import generate
    from captioner.data.vocab import Vocabulary
    from captioner.models.captioner import create_captioner

    if not os.path.isdir(os.path.join(args.data, "annotations")):
        generate(args.data, seed=0, splits={"train": args.images, "val": 8, "test": 8})
    records = load_coco_split(args.data, "train")[0][:args.images]
    vocabulary = Vocabulary.build(c for r in records for c in r.captions)
    config = preset("default")
    config.encoder.backbone, config.encoder.image_size = args.backbone, args.image_size
    config.encoder.fine_tune = False
    config.vocab_size, config.vocab_hash, config.max_length = len(vocabulary), vocabulary.hash, 22

    def fresh_model():
        model = create_captioner(config, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        return model

    def batches(images=None):
        return CaptionBatches(records, vocabulary, args.image_size, args.batch_size,
                              config.max_length, seed=0, images=images)

    model = fresh_model()
    print(f"backbone {args.backbone} at {args.image_size} px (frozen), grid {model.grid_shape}, "
          f"{len(records)} images, batch {args.batch_size}, {args.epochs} epochs, "
          f"Keras {keras.__version__} on {keras.backend.backend()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    warm = batches()
    warm.images.batch(range(len(records)))  # decode every image once: both runs start warm
    without = timed_epochs(model, warm, args.epochs)

    model = fresh_model()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        cache = FeatureCache(model.encoder, [r.path for r in records], folder,
                             batch_size=args.batch_size, progress=False)
        build = time.perf_counter() - started
        with_cache = timed_epochs(model, batches(cache), args.epochs)
        size = os.path.getsize(cache.path) / 2 ** 20

    def rate(seconds):  # steady state: the first epoch also traces the training step
        steady = seconds[1:] or seconds
        return len(records) / (sum(steady) / len(steady))

    print(f"{'':28}{'captions/s':>12}{'s/epoch':>10}")
    for name, times in (("encoder every step", without), ("cached features", with_cache)):
        steady = sum(times[1:] or times) / max(len(times) - 1, 1)
        print(f"{name:28}{rate(times):12.1f}{steady:10.2f}")
    print(f"cache: built once in {build:.1f} s ({size:.1f} MiB on disk); "
          f"speed-up per epoch {rate(with_cache) / rate(without):.1f}x; "
          f"first epochs (tracing included): {without[0]:.1f} s vs {with_cache[0]:.1f} s")


if __name__ == "__main__":
    main()
