"""The feature cache's precision: a trained captioner decoding its encoder's features as
float32 and as the float16 the cache stores by default.

    python -m benchmarks.cache_precision --model runs/hard/seed0 --coco data/hard2k
        [--split test] [--beam 1]

Encodes the split's images once, then captions them from the features as they are
(float32) and rounded to float16 and back (what ``FeatureCache`` stores and the decoder
reads), each as ``caption`` searches by default. Prints one JSON line: CIDEr-D of each
(the project's tokenizer), the share of images whose caption is the same, and the largest
relative rounding of a feature. The model's own encoder stands for a frozen backbone: the
rounding is what is measured, whichever CNN made the features.
"""

import json

from benchmarks.common import split_parser
from captioner.cli import import_keras_quietly


def main():
    parser = split_parser(__doc__)
    parser.add_argument("--beam", type=int, default=1)
    args = parser.parse_args()
    import_keras_quietly()
    import numpy as np
    from keras import ops

    from benchmarks.common import machine
    from captioner import SearchConfig
    from captioner.data.coco import CaptionSource
    from captioner.data.images import load_resized
    from captioner.metrics.captions import caption_scores
    from captioner.tasks import load
    task = load(args.model)
    records, _ = CaptionSource(args.coco).split(args.split, instances=False)
    size = task.model.model_config.encoder.image_size
    search = SearchConfig(beam=args.beam)
    found, rounding = {"float32": [], "float16": []}, 0.0
    for start in range(0, len(records), 32):
        images = np.stack([load_resized(r.path, size) for r in records[start:start + 32]])
        features = ops.convert_to_numpy(task.model.encode(images)).astype("float32")
        stored = features.astype("float16").astype("float32")
        scale = np.maximum(np.abs(features), 1e-3)
        rounding = max(rounding, float(np.max(np.abs(stored - features) / scale)))
        for name, given in (("float32", features), ("float16", stored)):
            found[name] += [c[0].caption for c in task.decode({"features": given}, search)]
    references = {i: r.captions for i, r in enumerate(records)}
    scores = {name: caption_scores(references, dict(enumerate(captions)), ("CIDEr",),
                                   tokenizer="captioner")[0]["CIDEr"]
              for name, captions in found.items()}
    same = sum(a == b for a, b in zip(found["float32"], found["float16"])) / len(records)
    print(json.dumps({"figure": "captions from float16-stored features", "model": args.model,
                      "data": args.coco, "split": args.split, "images": len(records),
                      "search": search.name, "cider_float32": scores["float32"],
                      "cider_float16": scores["float16"], "same_caption": same,
                      "largest_relative_rounding": rounding, "machine": machine()}))


if __name__ == "__main__":
    main()
