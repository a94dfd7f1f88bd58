"""One accelerator, JAX only: training and decoding speed where a GPU is lent.

    KERAS_BACKEND=jax python -m benchmarks.device_check [--quick] [--peak 790]

Run by ``benchmarks/device_check.sh`` (which installs the carried wheels first); needs
Keras and JAX, not TensorFlow. Prints one JSON line per figure; ``--quick`` runs every
part small, to try the script on a CPU.

- captioner: the default captioner (small CNN fine-tuned, soft attention, the default
  dtype policy, ``auto``: bfloat16 on a GPU) trained on synthetic images through the
  input pipeline a JAX machine has (``CaptionBatches``, Python threads): images/s, step
  time, the share of the GPU's bf16 peak (FLOPs of one step by XLA's ``cost_analysis``),
  and the share of the step spent waiting for input (1 - in-memory step / real step), at
  batch 32 (the default) and 256.
- resnet50: ResNet50 fine-tuned at 224 px in mixed_bfloat16 (random weights: nothing can
  be downloaded there), batch 128, inputs already in memory: images/s, step time, share of
  peak.
- decode: compiled greedy and beam-5 search (encoder, decoder and loop in one call) of
  the default-sized captioner, ms per caption at batch 1 and 32.

Internal imports: the model factory, the training compile and the batches, which it
times on the device one by one.
"""

import argparse
import sys
import tempfile
import time

from benchmarks.common import emit


def step_flops(model, batch):
    """XLA's count of one training step's FLOPs (the recurrence unrolled: XLA counts a
    loop's body once)."""
    import jax
    decoder = getattr(model, "decoder", None)
    if decoder is not None:
        decoder.recurrence = "unrolled"
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    compiled = jax.jit(lambda *args: model.train_step(*args)).lower(state, batch).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    if decoder is not None:
        decoder.recurrence = None
    return float(analysis["flops"])


def timed_steps(model, batches, repeats):
    """Median seconds of ``train_on_batch`` over ``batches`` (after a pass that compiles)."""
    import numpy as np
    for batch in batches:
        model.train_on_batch(*batch)
    times = []
    for _ in range(repeats):
        for batch in batches:
            began = time.perf_counter()
            model.train_on_batch(*batch)
            times.append(time.perf_counter() - began)
    return float(np.median(times))


def captioner_part(args, work):
    import keras

    from captioner.config import ModelConfig, TrainConfig
    from captioner.data.coco import load_coco_split
    from captioner.data.dataset import CaptionBatches, max_caption_length
    from captioner.data.synthetic import generate
    from captioner.data.vocab import Vocabulary
    from captioner.models.base import dtype_policy
    from captioner.models.captioner import create_captioner
    from captioner.training.loop import compile_for_training
    images = 256 if args.quick else 4096
    generate(work, seed=0, splits={"train": images})
    records, _ = load_coco_split(work, "train", instances=False)
    vocabulary = Vocabulary.build(c for r in records for c in r.captions)
    config = ModelConfig()
    config.vocab_size, config.vocab_hash = len(vocabulary), vocabulary.hash
    config.max_length = max_caption_length(records, TrainConfig().data.max_words)
    with dtype_policy("auto") as policy:
        for batch_size in (32, 256):
            model = create_captioner(config, seed=0)
            compile_for_training(model, TrainConfig(), 100)
            data = CaptionBatches(records, vocabulary, config.encoder.image_size, batch_size,
                                  config.max_length)
            held = [data[i] for i in range(len(data))]  # decoded once: the in-memory figure
            ideal = timed_steps(model, held, 1 if args.quick else 3)
            data.set_epoch(1)  # other batches, decoded again (no image cache)
            data.images.capacity, data.images.cache = 0, {}
            model.fit(data, epochs=1, verbose=0, shuffle=False)  # shapes compiled
            data.set_epoch(2)
            began = time.perf_counter()
            model.fit(data, epochs=1, verbose=0, shuffle=False)
            real = (time.perf_counter() - began) / len(data)
            flops = step_flops(model, held[0])
            emit(figure="captioner training, JAX", policy=policy, batch=batch_size,
                 images_per_s=round(batch_size / real, 1), step_ms=round(1000 * real, 2),
                 in_memory_step_ms=round(1000 * ideal, 2),
                 input_wait_share=round(max(0.0, 1 - ideal / real), 3),
                 gflop_per_step=round(flops / 1e9, 2),
                 share_of_peak=round(flops / ideal / (args.peak * 1e12), 4))
            keras.backend.clear_session()
    return records, vocabulary, config


def resnet_part(args):
    import keras
    import numpy as np

    from captioner.config import EncoderConfig, ModelConfig, TrainConfig
    from captioner.models.base import dtype_policy
    from captioner.models.captioner import create_captioner
    from captioner.training.loop import compile_for_training
    batch, size = (4, 64) if args.quick else (128, 224)
    config = ModelConfig(encoder=EncoderConfig(backbone="resnet50", image_size=size,
                                               fine_tune=True, weights="none"))
    config.vocab_size, config.vocab_hash, config.max_length = 1000, "", 16
    rng = np.random.default_rng(0)
    held = [({"images": rng.integers(0, 256, (batch, size, size, 3)).astype("uint8"),
              "tokens": rng.integers(4, 1000, (batch, 17)).astype("int32")},
             rng.integers(4, 1000, (batch, 17)).astype("int32"),
             np.ones((batch, 17), "float32"))]
    with dtype_policy("mixed_bfloat16"):
        model = create_captioner(config, seed=0)
        compile_for_training(model, TrainConfig(), 100)
        seconds = timed_steps(model, held * (2 if args.quick else 10), 1 if args.quick else 3)
        flops = step_flops(model, held[0])
    emit(figure="ResNet50 fine-tuning with the decoder, JAX", policy="mixed_bfloat16",
         image_size=size, batch=batch, images_per_s=round(batch / seconds, 1),
         step_ms=round(1000 * seconds, 2), gflop_per_step=round(flops / 1e9, 1),
         share_of_peak=round(flops / seconds / (args.peak * 1e12), 4))
    keras.backend.clear_session()


def decode_part(args, records, vocabulary, config):
    import numpy as np

    from captioner.config import SearchConfig
    from captioner.data.images import load_resized
    from captioner.models.captioner import create_captioner
    from captioner.tasks import ImageCaptioner
    model = create_captioner(config, seed=0)  # untrained: the loop runs to max_length
    task = ImageCaptioner(model, vocabulary)
    pixels = np.stack([load_resized(r.path, config.encoder.image_size) for r in records[:32]])
    for beam in (1, 5):
        search = task.search(SearchConfig(beam=beam))
        for batch in (1, 32):
            images = pixels[:batch]
            search.predict_on_batch({"images": images})  # compiles
            times = []
            for _ in range(3 if args.quick else 10):
                began = time.perf_counter()
                search.predict_on_batch({"images": images})
                times.append(time.perf_counter() - began)
            emit(figure="compiled decoding, JAX", search="greedy" if beam == 1 else
                 f"beam {beam}", batch=batch, words=config.max_length,
                 ms_per_caption=round(1000 * min(times) / batch, 3))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every part small (a CPU try)")
    parser.add_argument("--peak", type=float, default=790.0,
                        help="the accelerator's bf16 peak in TFLOP/s (an H200: about 790)")
    parser.add_argument("--only", default="captioner,resnet,decode")
    args = parser.parse_args()
    import keras
    if keras.backend.backend() != "jax":
        sys.exit("error: run with KERAS_BACKEND=jax")
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as work:
        records, vocabulary, config = captioner_part(args, work) if "captioner" in only \
            or "decode" in only else (None, None, None)
        if "resnet" in only:
            resnet_part(args)
        if "decode" in only:
            decode_part(args, records, vocabulary, config)


if __name__ == "__main__":
    main()
