"""The training input at COCO scale: start-up, decoding throughput, data wait, padding.

    python -m benchmarks.input_pipeline [--only startup,padding,pipeline,train,resnet]
                                        [--work /tmp/captioner-input] [--old-commit REV]

Prints one JSON line per figure, each saying what it measured and on what:

- startup: a COCO-sized annotation set (118,287 training images with 591,435 captions and
  860,001 instances with polygons, a 5,000-image validation split; the images are 300
  640x480 JPEGs referenced many times). Seconds from launching ``train.py`` to the end of
  its first training step, and the process's peak RSS then, for this checkout and, with
  ``--old-commit``, for an older one (checked out into a git worktree).
- padding: the share of decoder steps spent on padding over an epoch of those captions
  (their lengths drawn like COCO's: mean about 11 words), by ``--length-bucket``.
- pipeline: images/s of the input alone over 640x480 JPEGs (no model; nothing cached, so
  every image is decoded), with 1 and 2 cores: the previous path (PIL in the calling
  thread, float32, padded to the longest caption) against tf.data.
- train: images/s of ``fit()`` on the small CNN at 96 px, previous path against tf.data,
  and the share of step time spent waiting for data: 1 - (time with every input already
  in memory) / (time reading it), the same batches both ways; and the share of decoder
  steps spent on padding.
- resnet: ResNet50 at 224 px, frozen with float16 cached features (the previous path:
  float32), and fine-tuned: images/s of the previous path and of tf.data (random
  weights: no download here).

Each throughput figure is the fastest of ``--repeats`` epochs (shared cores vary by a
fifth from run to run), after an epoch that compiles every shape.

Old and new run in the same process on the same files, one after the other.

Internal imports: the input pipeline's parts (image cache, tf.data batches, epoch plan,
feature cache), which is what it measures.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.common import ROOT, checkouts, emit

COCO_TRAIN, COCO_CAPTIONS, COCO_INSTANCES, COCO_VAL = 118_287, 591_435, 860_001, 5_000


# --- data ------------------------------------------------------------------------------
def photo_data(work, images):
    """640x480 JPEGs in the COCO layout (the synthetic scenes, resized, with noise)."""
    folder = os.path.join(work, "photo")
    if not os.path.isdir(os.path.join(folder, "annotations")):
        from captioner.data.synthetic import generate
        generate(folder, seed=0, splits={"train": images, "val": 20, "test": 20},
                 size=(640, 480), image_format="jpg")
    return folder


def coco_sized(work, photo):
    """The COCO-sized annotation set over the photo files (see the module docstring)."""
    import numpy as np

    from captioner import io
    folder = os.path.join(work, "coco-sized")
    marker = os.path.join(folder, "annotations", "instances_train2017.json")
    if os.path.isfile(marker):
        return folder
    rng = np.random.default_rng(0)
    words = ("a man woman dog cat sitting standing on the of with in front table street "
             "red blue large small near next to two people riding bike car plate food "
             "white black holding looking at window kitchen room grass field").split()
    for split, count, images_per_file in (("val", COCO_VAL, None), ("train", COCO_TRAIN, None)):
        source = os.path.join(photo, f"{split}2017")
        files = sorted(os.listdir(source))
        target = os.path.join(folder, f"{split}2017")
        if not os.path.isdir(target):
            os.makedirs(folder, exist_ok=True)
            os.symlink(source, target)
        images = [{"id": i + 1, "file_name": files[i % len(files)], "width": 640,
                   "height": 480} for i in range(count)]
        captions_count = COCO_CAPTIONS if split == "train" else 5 * count
        owners = np.concatenate([np.arange(count).repeat(5),
                                 rng.integers(0, count, captions_count - 5 * count)])
        lengths = np.clip(rng.gamma(9, 1.15, captions_count).round() + 1, 6, 50).astype(int)
        annotations = [{"id": int(i + 1), "image_id": int(owners[i] + 1),
                        "caption": " ".join(rng.choice(words, lengths[i]))}
                       for i in range(captions_count)]
        io.write_json(os.path.join(folder, "annotations", f"captions_{split}2017.json"),
                      {"images": images, "annotations": annotations}, indent=None)
        del annotations
        objects = COCO_INSTANCES if split == "train" else 7 * count
        owners = rng.integers(0, count, objects)
        polygon = [round(float(v), 2) for v in rng.uniform(0, 400, 48)]
        instances = [{"id": int(i + 1), "image_id": int(owners[i] + 1), "category_id": 1,
                      "bbox": [10.0, 20.0, 100.0, 80.0], "area": 8000.0, "iscrowd": 0,
                      "segmentation": [polygon]} for i in range(objects)]
        io.write_json(os.path.join(folder, "annotations", f"instances_{split}2017.json"),
                      {"images": images, "annotations": instances,
                       "categories": [{"id": 1, "name": "person"}]}, indent=None)
    return folder


# --- start-up --------------------------------------------------------------------------
FIRST_STEP_CHILD = """
import json, os, resource, runpy, sys, time
import keras
started, report = float(sys.argv[1]), sys.argv[2]

class FirstStep(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        with open(report, "w") as handle:
            json.dump({"seconds": time.time() - started,
                       "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
                      handle)
        os._exit(0)

fit = keras.Model.fit
def fit_with_probe(self, *args, **kwargs):
    kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [FirstStep()]
    return fit(self, *args, **kwargs)
keras.Model.fit = fit_with_probe
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def first_step(checkout, coco, work):
    """(seconds to the first step, peak RSS MB) of ``checkout``'s train.py on ``coco``."""
    with tempfile.TemporaryDirectory(dir=work) as out:
        report = os.path.join(out, "first_step.json")
        command = [sys.executable, "-c", FIRST_STEP_CHILD, str(time.time()), report,
                   os.path.join(checkout, "train.py"), "--coco", coco, "--out",
                   os.path.join(out, "run"), "--epochs", "1", "--no-progress",
                   "--feature-cache", os.path.join(out, "features")]
        subprocess.run(command, cwd=checkout, check=False, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": checkout})
        if not os.path.isfile(report):
            return None, None
        with open(report) as handle:
            result = json.load(handle)
    return result["seconds"], result["peak_rss_mb"]


def startup(args, coco):
    for name, checkout in checkouts(args.work, args.old_commit):
        seconds, rss = first_step(checkout, coco, args.work)
        emit(figure="train.py start to the end of the first step, COCO-sized annotations",
             code=name, images=COCO_TRAIN, captions=COCO_CAPTIONS, instances=COCO_INSTANCES,
             seconds=seconds and round(seconds, 1), peak_rss_mb=rss and round(rss))


def padding(coco):
    """The share of decoder steps spent on padding in an epoch of the COCO-sized set, by
    ``length_bucket`` (0: every batch padded to max_length + 1, the previous path)."""
    from captioner.data.coco import load_coco_split
    from captioner.data.dataset import CaptionTable, max_caption_length, plan_epoch
    from captioner.data.vocab import Vocabulary
    records = load_coco_split(coco, "train", check_files=False, instances=False)[0]
    vocabulary = Vocabulary.build((c for r in records for c in r.captions), 5)
    table = CaptionTable(records, vocabulary, max_caption_length(records, 40))
    for bucket in (0, 1, 2, 4, 8):
        plan = plan_epoch(table, 32, seed=0, epoch=0, length_bucket=bucket)
        emit(figure="decoder steps spent on padding, one epoch, COCO-sized captions",
             length_bucket=bucket, batch_size=32, mean_words=round(float(table.lengths.mean()), 1),
             max_length=table.max_length, padding_share=round(plan.padding_share(table)[0], 3),
             shapes=len(set(plan.steps.tolist())))


# --- the previous input path, as it was ------------------------------------------------
def previous_batches(records, vocabulary, image_size, backbone, batch_size, max_length,
                     seed=0):
    """The input path before tf.data: a PyDataset that decodes with PIL in the training
    thread, scales to float32 there, and pads every batch to ``max_length + 1``."""
    import keras
    import numpy as np

    from captioner.data.dataset import CaptionTable, plan_epoch
    from captioner.data.images import load_image, resize_image, scale_pixels

    class Previous(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.table = CaptionTable(records, vocabulary, max_length)
            self.plan = plan_epoch(self.table, batch_size, seed, 0, length_bucket=0)

        def __len__(self):
            return len(self.plan.steps)

        def __getitem__(self, index):
            # the earlier pipeline: each image read, resized and scaled in NumPy
            images = np.stack([np.asarray(scale_pixels(resize_image(
                load_image(records[i].path), image_size).astype(np.float32), backbone),
                np.float32) for i in self.plan.images[index]])
            tokens, targets, mask = self.table.arrays(self.plan.captions[index],
                                                      max_length + 1)
            return {"images": images, "tokens": tokens}, targets, mask * \
                self.plan.weights[index][:, None]
    return Previous()


class InMemory:
    """The batches of a data set, read once: what training would take with no input cost."""

    def __init__(self, batches):
        import keras

        class Stored(keras.utils.PyDataset):
            def __init__(self, items):
                super().__init__()
                self.items = items

            def __len__(self):
                return len(self.items)

            def __getitem__(self, index):
                return self.items[index]
        data = batches.fit_input() if hasattr(batches, "fit_input") else batches
        items = list(data.as_numpy_iterator()) if hasattr(data, "as_numpy_iterator") else \
            [data[i] for i in range(len(data))]
        self.data = Stored(items)


def timed_fit(model, data, repeats=1):
    """The fastest of ``repeats`` epochs, in seconds (these cores are shared: the minimum
    is the stable figure)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.fit(data, epochs=1, verbose=0, shuffle=False)
        times.append(time.perf_counter() - started)
    return min(times)


# --- throughput ------------------------------------------------------------------------
PIPELINE_CHILD = """
import os, sys
os.sched_setaffinity(0, set(range(int(sys.argv[1]))))
from benchmarks.input_pipeline import pipeline_alone
pipeline_alone(*sys.argv[2:])
"""


def pipeline_alone(photo, image_size, cores):
    """Images/s of the two input paths alone (run in a process limited to ``cores``)."""
    import numpy as np

    from captioner.cli import import_keras_quietly
    import_keras_quietly()
    from captioner.data.coco import load_coco_split
    from captioner.data.dataset import ImageCache
    from captioner.data.tf_pipeline import TFCaptionBatches
    from captioner.data.vocab import Vocabulary
    image_size = int(image_size)
    records = load_coco_split(photo, "train", instances=False)[0]
    vocabulary = Vocabulary.build(c for r in records for c in r.captions)
    old = previous_batches(records, vocabulary, image_size, "small", 32, 40)
    started = time.perf_counter()
    for index in range(len(old)):
        old[index]
    old_rate = len(records) / (time.perf_counter() - started)
    new = TFCaptionBatches(records, vocabulary, image_size, 32, 40, images=ImageCache(
        [r.path for r in records], image_size, budget_bytes=0))
    rates = []
    for epoch in range(3):  # the first includes tf.data's start
        new.set_epoch(epoch)
        started = time.perf_counter()
        for _ in new.fit_input():
            pass
        rates.append(len(records) / (time.perf_counter() - started))
    for path, rate in (("previous (PIL in the training thread, float32)", old_rate),
                       ("tf.data (parallel decode, uint8, prefetch)", float(np.median(rates)))):
        emit(figure="input pipeline alone, 640x480 JPEG -> model input, nothing cached",
             path=path, image_size=image_size, cores=int(cores), images_per_s=round(rate, 1))


def pipelines(args, photo):
    for image_size in (96, 224):
        for cores in (1, 2):
            subprocess.run([sys.executable, "-c", PIPELINE_CHILD, str(cores), photo,
                            str(image_size), str(cores)], check=True,
                           env={**os.environ, "PYTHONPATH": ROOT})


def train_throughput(args, photo, backbone="small", image_size=96, fine_tune=True,
                     images=None, batch_size=32, feature_dtype=None):
    """Old path against tf.data on ``fit()``: images/s, and the share of time waiting."""
    import keras

    from captioner.config import EncoderConfig, ModelConfig
    from captioner.data.coco import load_coco_split
    from captioner.data.dataset import CaptionBatches, ImageCache, max_caption_length
    from captioner.data.features import FeatureCache
    from captioner.data.tf_pipeline import TFCaptionBatches
    from captioner.data.vocab import Vocabulary
    from captioner.models.captioner import create_captioner
    records = load_coco_split(photo, "train", instances=False)[0][:images]
    vocabulary = Vocabulary.build(c for r in records for c in r.captions)
    config = ModelConfig(encoder=EncoderConfig(backbone=backbone, image_size=image_size,
                                               fine_tune=fine_tune, weights="none"))
    config.vocab_size, config.vocab_hash = len(vocabulary), vocabulary.hash
    config.max_length = max_caption_length(records, 40)
    model = create_captioner(config, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    paths = [r.path for r in records]
    features = {}
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        if not fine_tune:  # the previous path cached float32; the new one float16
            for dtype in ("float32", feature_dtype):
                started = time.perf_counter()
                features[dtype] = FeatureCache(model.encoder, paths, folder, batch_size,
                                               dtype=dtype, progress=False)
                emit(figure="feature cache build", backbone=backbone, image_size=image_size,
                     dtype=dtype, images=len(paths),
                     seconds=round(time.perf_counter() - started, 1),
                     megabytes=round(os.path.getsize(features[dtype].path) / 2**20, 1))
        if fine_tune:
            old = previous_batches(records, vocabulary, image_size, backbone, batch_size,
                                   config.max_length)
        else:  # as before: a PyDataset in the training thread, float32, at a fixed length
            old = CaptionBatches(records, vocabulary, image_size, batch_size,
                                 config.max_length, images=features["float32"],
                                 length_bucket=0, workers=1)
        new = TFCaptionBatches(records, vocabulary, image_size, batch_size, config.max_length,
                               images=features.get(feature_dtype) or ImageCache(
                                   paths, image_size, budget_bytes=0))
        for name, batches in (("previous", old), ("tf.data", new)):
            data = batches.fit_input() if name == "tf.data" else batches
            stored = InMemory(batches).data
            timed_fit(model, stored)  # compiles every shape
            real, ideal = [], []
            for _ in range(args.repeats):  # interleaved, so that drift hits both alike
                real.append(timed_fit(model, data))
                ideal.append(timed_fit(model, stored))
            real, ideal = min(real), min(ideal)
            share, fixed = new.padding_share() if name == "tf.data" else (
                old.plan.padding_share(old.table)[1],) * 2
            emit(figure="training throughput", path=name, backbone=backbone,
                 image_size=image_size, fine_tune=fine_tune,
                 input=f"cached {feature_dtype if name == 'tf.data' else 'float32'} features"
                 if not fine_tune else "640x480 JPEG, decoded every epoch",
                 images=len(records), batch_size=batch_size, backend=keras.backend.backend(),
                 images_per_s=round(len(records) / real, 1),
                 waiting_share=round(max(0.0, 1 - ideal / real), 3),
                 padding_share=round(share, 3))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="startup,padding,pipeline,train,resnet")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(),
                                                       "captioner-input"))
    parser.add_argument("--images", type=int, default=300, help="640x480 JPEG files")
    parser.add_argument("--resnet-images", type=int, default=160,
                        help="images for the frozen ResNet50 (fine-tuning: 32)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed epochs per figure (the fastest counts)")
    parser.add_argument("--old-commit", default=None,
                        help="also time the start-up of this revision (a git worktree)")
    return parser.parse_args()


def main():
    args = parse_args()
    os.makedirs(args.work, exist_ok=True)
    only = set(args.only.split(","))
    photo = photo_data(args.work, args.images)
    if "startup" in only:
        startup(args, coco_sized(args.work, photo))
    if "padding" in only:
        padding(coco_sized(args.work, photo))
    if "pipeline" in only:
        pipelines(args, photo)
    from captioner.cli import import_keras_quietly
    import_keras_quietly()
    if "train" in only:
        train_throughput(args, photo)
    if "resnet" in only:
        train_throughput(args, photo, "resnet50", 224, fine_tune=False,
                         images=args.resnet_images, batch_size=16, feature_dtype="float16")
        args.repeats = min(args.repeats, 2)  # about 15 s a step on 2 CPU cores
        train_throughput(args, photo, "resnet50", 224, fine_tune=True, images=32,
                         batch_size=16)


if __name__ == "__main__":
    main()
