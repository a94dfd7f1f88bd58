"""Exports against ``captioner caption``: the share of images whose captions are identical.

    python -m benchmarks.export_captions --model runs/hard/seed0 --coco data/hard2k
        [--limit 200] [--formats saved_model,litert,onnx]

Exports the model's greedy search and beam 3 with its 3-best list (each as ``caption``
searches by default, grounded for a model with a grounding head) and runs each export on
the first ``--limit`` test images: the SavedModel's ``serve`` on the batch, the LiteRT
interpreter one image at a time, ONNX Runtime on the batch. Prints one JSON line per
export and search: images, and those whose list of captions is identical to
``ImageCaptioner.caption``'s.
"""

import json
import tempfile
import warnings

from benchmarks.common import split_parser
from captioner.cli import import_keras_quietly


def exported_captions(folder, format, images, words):
    """Per image its captions (best first) from the export in ``folder``."""
    import numpy as np
    import tensorflow as tf
    if format == "saved_model":
        loaded = tf.saved_model.load(folder)
        found = {key: value.numpy() for key, value in loaded.serve(images).items()}
    elif format == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(f"{folder}/model.onnx")
        names = [output.name for output in session.get_outputs()]
        found = dict(zip(names, session.run(None, {"images": images})))
    else:
        run = tf.lite.Interpreter(model_path=f"{folder}/model.tflite").get_signature_runner()
        rows = [run(images=image[None]) for image in images]
        found = {key: np.concatenate([row[key] for row in rows]) for key in rows[0]}
    tokens, lengths, scores = found["tokens"], found["lengths"], found["scores"]
    if tokens.ndim == 2:  # one caption per image
        tokens, lengths, scores = tokens[:, None], lengths[:, None], scores[:, None]
    return [[" ".join(words[t] for t in row[:length])
             for row, length, score in zip(*image) if np.isfinite(score)]
            for image in zip(tokens, lengths, scores)]


def main():
    parser = split_parser(__doc__)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--formats", default="saved_model,litert,onnx")
    args = parser.parse_args()
    import_keras_quietly()
    warnings.simplefilter("ignore")
    import numpy as np

    from benchmarks.common import machine
    from captioner import SearchConfig
    from captioner.data.coco import CaptionSource
    from captioner.data.images import load_resized
    from captioner.tasks import load
    task = load(args.model)
    records, _ = CaptionSource(args.coco).split(args.split, instances=False)
    paths = [record.path for record in records[:args.limit]]
    size = task.model.model_config.encoder.image_size
    images = np.stack([load_resized(path, size) for path in paths])
    for format in args.formats.split(","):
        for search in (SearchConfig(), SearchConfig(beam=3, n_best=3)):
            folder = task.export(tempfile.mkdtemp() + "/export", format, search=search)
            expected = [[caption.caption for caption in item.n_best]
                        for item in task.caption(paths, search)]
            got = exported_captions(folder, format, images, task.vocabulary.words)
            print(json.dumps({"figure": "exported captions identical to captioner caption's",
                              "format": format, "search": search.name, "model": args.model,
                              "images": len(paths),
                              "identical": sum(g == e for g, e in zip(got, expected)),
                              "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
