"""Decoding speed: ms per caption, eager search against search compiled whole.

    python -m benchmarks.decode_speed [--backend tensorflow,jax] [--repeats 5]

The bundled default model captions the six sample images, repeated to batches of 1 and
32: greedy search and beam search 3 and 5, each as the eager NumPy reference
(``tests/reference_search.py``, a host round trip per word) and
compiled (``ImageCaptioner.search``: encoder, decoder and the search
loop in one ``predict_on_batch``); on TensorFlow also greedy exported to ONNX
(``python -m captioner.commands.export --format onnx``) under ONNX Runtime on the CPU.
Each backend runs in a fresh process; each figure is the best of ``--repeats`` warm runs
(the first calls compile). Prints one JSON line per figure.

Internal imports: the image preprocessing (the search is timed on arrays) and
``tests/reference_search.py``, the eager search it is compared with.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, os, sys, time
import numpy as np
import keras
from captioner.data.images import load_resized
from captioner import SearchConfig, load_model
from tests.reference_search import beam_search, greedy_search

repeats = int(sys.argv[1])
saved = load_model(os.path.join(sys.argv[2], "assets", "model"))
model, vocabulary = saved.model, saved.vocabulary
size, longest = model.model_config.encoder.image_size, model.model_config.max_length
folder = os.path.join(sys.argv[2], "assets", "samples")
samples = np.stack([load_resized(os.path.join(folder, name), size)
                    for name in sorted(os.listdir(folder))])


def eager(images, beam):
    memory = model.decoder.prepare(model.encode(images))
    arguments = (model.decoder.step, model.decoder.initial_state(memory, longest + 1), memory,
                 len(images),
                 vocabulary.start_id, vocabulary.end_id, longest)
    return greedy_search(*arguments) if beam == 1 else beam_search(*arguments, beam_size=beam)


def compiled(images, beam):
    return saved.search(SearchConfig(beam=beam)).predict_on_batch({"images": images})


def exported_onnx():
    import tempfile
    import onnxruntime
    folder = saved.export(os.path.join(tempfile.mkdtemp(), "onnx"), "onnx")
    session = onnxruntime.InferenceSession(os.path.join(folder, "model.onnx"))
    return lambda images: session.run(None, {"images": images})


searches = {}
for beam in (1, 3, 5):
    name = "greedy" if beam == 1 else f"beam {beam}"
    searches[name + ", eager"] = lambda images, beam=beam: eager(images, beam)
    searches[name + ", compiled"] = lambda images, beam=beam: compiled(images, beam)
if keras.backend.backend() == "tensorflow":
    searches["greedy, ONNX Runtime"] = exported_onnx()
for batch in (1, 32):
    images = samples[np.arange(batch) % len(samples)]
    for name, search in searches.items():
        search(images)  # compiles
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            search(images)
            times.append(time.perf_counter() - started)
        print(json.dumps({"search": name, "batch": batch,
                          "ms_per_caption": round(1000 * min(times) / batch, 2)}), flush=True)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="tensorflow,jax")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from benchmarks.common import machine
    for backend in args.backend.split(","):
        env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        result = subprocess.run([sys.executable, "-c", CHILD, str(args.repeats), ROOT],
                                capture_output=True, text=True, env=env)
        if result.returncode:
            sys.exit(result.stderr[-2000:])
        for line in result.stdout.strip().splitlines():
            print(json.dumps({"figure": "decoding speed, default model, sample images",
                              "backend": backend, **json.loads(line), "machine": machine()}),
                  flush=True)


if __name__ == "__main__":
    main()
