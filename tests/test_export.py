"""The exported models serve the bundled model's captions in a process that never imports
captioner: the SavedModel from uint8 model inputs exactly and from the encoded files, the
ONNX model under onnxruntime."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

SAVED_MODEL = r"""
import json, sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
images = np.load(sys.argv[2])
files = tf.constant([open(path, "rb").read() for path in sys.argv[3:]])
exact, decoded = served.serve(tf.constant(images)), served.serve_bytes(files)
assert not any(name.startswith("captioner") for name in sys.modules)
print(json.dumps({"captions": [c.decode() for c in exact["captions"].numpy()],
                  "from_files": [c.decode() for c in decoded["captions"].numpy()],
                  "probabilities": exact["probabilities"].numpy().tolist(),
                  "lengths": exact["lengths"].numpy().tolist(),
                  "alphas_shape": list(exact["alphas"].shape)}))
"""

ONNX = r"""
import json, sys
import numpy as np
import onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1] + "/model.onnx")
names = [output.name for output in session.get_outputs()]
outputs = dict(zip(names, session.run(None, {"images": np.load(sys.argv[2])})))
words = json.load(open(sys.argv[1] + "/vocab.json"))["words"]
assert not any(name.startswith(("captioner", "tensorflow", "keras")) for name in sys.modules)
print(json.dumps({"captions": [" ".join(words[t] for t in row[:length]) for row, length
                               in zip(outputs["tokens"], outputs["lengths"])],
                  "probabilities": outputs["probabilities"].tolist(),
                  "lengths": outputs["lengths"].tolist(),
                  "alphas_shape": list(outputs["alphas"].shape)}))
"""


SHAPES = {1: [{"category": shape, "attributes": {"color": colour}}
              for shape in ("circle", "square", "triangle", "diamond")
              for colour in ("red", "green", "blue", "yellow", "purple")]}


@pytest.fixture(scope="module", params=[  # exports end to end: the slow pass
    pytest.param("lstm", marks=pytest.mark.slow),
    pytest.param("transformer", marks=pytest.mark.slow),
    pytest.param("grounded", marks=pytest.mark.slow)])
def bundled(request, tmp_path_factory):
    """(model folder, the loaded model, sample paths, .npy of their model inputs, the
    grounded decoding weight): the bundled model, a Transformer captioner of its
    vocabulary and encoder, and the bundled model with a grounding head searching
    grounded."""
    import keras
    if keras.backend.backend() != "tensorflow":
        pytest.skip("models are exported with the TensorFlow backend")
    from captioner.data.images import load_resized
    from tests.helpers import load_model, save_model
    model_folder = os.path.join(ROOT, "assets", "model")
    if request.param == "transformer":
        from captioner.config import ModelConfig, TransformerConfig
        from captioner.models.captioner import create_captioner
        bundled = load_model(model_folder)
        config = ModelConfig.from_dict({**bundled.model.model_config.to_dict(),
                                        "decoder": {"kind": "transformer", "layers": 2,
                                                    "encoder_layers": 1}})
        assert isinstance(config.decoder, TransformerConfig)
        model_folder = str(tmp_path_factory.mktemp("transformer") / "model")
        save_model(model_folder, create_captioner(config, seed=5), bundled.vocabulary)
    if request.param == "grounded":
        from captioner.data.regions import grounding_config
        from captioner.models.captioner import create_captioner
        bundled = load_model(model_folder)
        config = bundled.model.model_config
        config.grounding = grounding_config(SHAPES, bundled.vocabulary)
        model = create_captioner(config, seed=5)
        for part in ("encoder", "decoder"):
            getattr(model, part).set_weights(getattr(bundled.model, part).get_weights())
        kernel = model.grounding.classes.kernel  # a head sure enough to change words
        kernel.assign(20.0 * np.asarray(kernel))
        model_folder = str(tmp_path_factory.mktemp("grounded") / "model")
        save_model(model_folder, model, bundled.vocabulary)
    saved = load_model(model_folder)
    folder = os.path.join(ROOT, "assets", "samples")
    paths = [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
    size = saved.model.model_config.encoder.image_size
    images = tmp_path_factory.mktemp("inputs") / "images.npy"
    np.save(images, np.stack([load_resized(path, size) for path in paths]))
    return model_folder, saved, paths, str(images), 3.0 if request.param == "grounded" else 0.0


def serve(script, *args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                            text=True, env=env, cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_captions_of_caption_py(served, saved, paths, grounded):
    from captioner.config import SearchConfig
    from captioner.tasks import caption
    expected = caption(saved.folder, paths, search=SearchConfig(grounded=grounded))
    assert served["captions"] == [item.caption for item in expected]
    for row, item in enumerate(expected):
        length = served["lengths"][row]
        np.testing.assert_allclose(served["probabilities"][row][:length],
                                   item.best.probabilities, atol=1e-5)
    assert served["alphas_shape"][2:] == list(saved.model.grid_shape)


def test_the_saved_model_serves_the_captions_of_caption_py(bundled, tmp_path):
    model_folder, saved, paths, images, grounded = bundled
    out = saved.export(str(tmp_path / "served"), "saved_model", grounded)
    assert {"MODEL_CARD.md", "saved_model.pb", "vocab.json"} <= set(os.listdir(out))
    served = serve(SAVED_MODEL, out, images, *paths, cwd=tmp_path)
    assert_captions_of_caption_py(served, saved, paths, grounded)
    if grounded:  # and the re-scoring changed some words
        from captioner.tasks import caption
        assert served["captions"] != [item.caption for item in caption(saved.folder, paths)]
    # resized in the graph, same words
    if saved.model.model_config.decoder.kind == "lstm" and not grounded:
        assert served["from_files"] == served["captions"]
    else:  # untrained weights: a caption per file (not robust to the resize's rounding)
        assert len(served["from_files"]) == len(paths)


def test_the_onnx_model_serves_the_captions_of_caption_py(bundled, tmp_path):
    model_folder, saved, paths, images, grounded = bundled
    out = saved.export(str(tmp_path / "onnx"), "onnx", grounded)
    assert set(os.listdir(out)) == {"MODEL_CARD.md", "model.onnx", "vocab.json",
                                    ".captioner-export"}
    assert "ONNX" in open(os.path.join(out, "MODEL_CARD.md")).read()
    assert_captions_of_caption_py(serve(ONNX, out, images, cwd=tmp_path), saved, paths,
                                  grounded)


def test_an_export_never_overwrites_a_folder_in_use(bundled, tmp_path):
    from captioner.errors import OutputError
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"holds files that are not an export \(keep.txt\)"):
        bundled[1].export(str(tmp_path / "busy"), "onnx")
    assert os.listdir(tmp_path / "busy") == ["keep.txt"]
    assert os.listdir(tmp_path) == ["busy"]  # no partial folder left behind


FULL_SAVED_MODEL = r"""
import json, sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
images = tf.constant(np.load(sys.argv[2]))
seed = json.loads(sys.argv[3])
found = served.serve(images, tf.constant(seed, tf.uint32)) if seed else served.serve(images)
assert not any(name.startswith("captioner") for name in sys.modules)
print(json.dumps([[c.decode() for c, s in zip(row, scores) if np.isfinite(s)]
                  for row, scores in zip(found["captions"].numpy(), found["scores"].numpy())]))
"""

FULL_ONNX = r"""
import json, sys
import numpy as np
import onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1] + "/model.onnx")
names = [output.name for output in session.get_outputs()]
seed = json.loads(sys.argv[3])
feeds = {"images": np.load(sys.argv[2])}
if seed:
    feeds["seed"] = np.asarray(seed, np.uint32)
found = dict(zip(names, session.run(None, feeds)))
words = json.load(open(sys.argv[1] + "/vocab.json"))["words"]
print(json.dumps([[" ".join(words[t] for t in tokens[:length])
                   for tokens, length, score in zip(*row) if np.isfinite(score)]
                  for row in zip(found["tokens"], found["lengths"], found["scores"])]))
"""


FULL_LITERT = r"""
import json, sys
import numpy as np
try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:
    import warnings
    warnings.simplefilter("ignore")
    import tensorflow as tf
    Interpreter = tf.lite.Interpreter
run = Interpreter(model_path=sys.argv[1] + "/model.tflite").get_signature_runner()
words = json.load(open(sys.argv[1] + "/vocab.json"))["words"]
captions = []
for image in np.load(sys.argv[2]):
    found = run(images=image[None])
    tokens, lengths, scores = found["tokens"][0], found["lengths"][0], found["scores"][0]
    if tokens.ndim == 1:
        tokens, lengths, scores = tokens[None], lengths[None], scores[None]
    captions.append([" ".join(words[t] for t in row[:length])
                     for row, length, score in zip(tokens, lengths, scores)
                     if np.isfinite(score)])
assert not any(name.startswith("captioner") for name in sys.modules)
print(json.dumps(captions))
"""


@pytest.mark.slow  # an export each
@pytest.mark.parametrize("format, options", [
    ("saved_model", dict(beam=3, n_best=3)),
    ("saved_model", dict(beam=4, n_best=3, beam_groups=2, diversity=2.0, no_repeat_ngram=3)),
    ("saved_model", dict(samples=3, top_p=0.9, seed=4)),
    ("onnx", dict(samples=3, top_p=0.9, seed=4, temperature=1.3)),
    ("onnx", dict(beam=3, n_best=3)),
    ("onnx", dict(beam=4, n_best=2, beam_groups=2, diversity=2.0, no_repeat_ngram=3)),
    ("litert", dict()), ("litert", dict(beam=3, n_best=3)),
    ("litert", dict(samples=2, top_k=3, no_repeat_ngram=2))],
    ids=["saved_model-beam3", "saved_model-diverse", "saved_model-top-p", "onnx-top-p",
         "onnx-beam3", "onnx-diverse", "litert-greedy", "litert-beam3", "litert-sampling"])
def test_an_export_carries_the_search_and_gives_caption_py_s_captions(bundled, tmp_path,
                                                                      format, options):
    import dataclasses

    from captioner.config import SearchConfig
    from captioner.export import ExportWarning, describe
    model_folder, saved, paths, images, grounded = bundled
    search = SearchConfig(grounded=grounded, **options)
    if format == "litert" and search.sampling:
        # LiteRT cannot run it: greedy search with the same controls, and a warning why
        with pytest.warns(ExportWarning, match="no LiteRT kernel: model.tflite carries greedy"):
            out = saved.export(str(tmp_path / format), format, search=search)
        search = dataclasses.replace(search, beam=1, n_best=1, samples=1, top_k=0)
    else:
        out = saved.export(str(tmp_path / format), format, search=search)
    card = open(os.path.join(out, "MODEL_CARD.md"), encoding="utf-8").read()
    assert describe(saved.search_config(search), search.captions) in card
    seed = [search.seed] * len(paths) if search.sampling else []
    script = {"saved_model": FULL_SAVED_MODEL, "onnx": FULL_ONNX, "litert": FULL_LITERT}
    served = serve(script[format], out, images, json.dumps(seed), cwd=tmp_path)
    expected = [[caption.caption for caption in item.n_best]
                for item in saved.caption(paths, search)]
    assert served == expected and all(len(found) == search.captions for found in expected)
