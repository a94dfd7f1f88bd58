#!/usr/bin/env python3
"""Caption images with a trained captioner and show where it looked.

    python caption.py IMAGE_OR_FOLDER... [--model DIR] [--json] [--attention-dir DIR]
"""

import argparse
import json
import os
import sys

from captioner.cli import import_keras_quietly, run

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "model")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help="image files, or folders whose images are all captioned")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="model folder (default: the bundled model in assets/model)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON list (one object per image) and nothing else")
    parser.add_argument("--attention-dir", metavar="DIR",
                        help="write one PNG per image: a panel per word with its attention map")
    parser.add_argument("--batch-size", type=int, default=16, help="images decoded together")
    parser.add_argument("--max-length", type=int, default=None,
                        help="longest caption in words (default: the model's)")
    return parser.parse_args(argv)


def expand_inputs(inputs):
    """Files as given, folders replaced by their images; every path checked first."""
    from captioner.data.images import list_images
    from captioner.errors import ImageError
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = list_images(item)
            if not found:
                raise ImageError(f"No images in folder: {item}")
            paths.extend(found)
        elif os.path.exists(item):
            paths.append(item)
        else:
            raise ImageError(f"Image not found: {item}")
    return paths


def main(argv=None):
    args = parse_args(argv)
    paths = expand_inputs(args.inputs)
    import_keras_quietly()
    from tqdm import tqdm

    from captioner.data.images import load_image
    from captioner.models.captioner import load_model_dir
    from captioner.render import save_attention_figure

    for path in paths:  # every image is checked before the model is even loaded
        load_image(path)
    model, vocabulary, _ = load_model_dir(args.model)
    results = []
    with tqdm(total=len(paths), desc="captioning", unit="image", file=sys.stderr,
              disable=len(paths) < 4) as progress:
        for path, image, hypotheses in model_captions(model, vocabulary, paths, args, progress):
            best = hypotheses[0]
            result = {"path": path, "caption": best["caption"],
                      "words": [{"word": w, "probability": round(p, 4)}
                                for w, p in zip(best["words"], best["probabilities"])],
                      "log_probability": round(best["score"], 4)}
            if args.attention_dir:
                stem = os.path.splitext(os.path.basename(path))[0]
                result["attention_png"] = os.path.join(args.attention_dir, f"{stem}_attention.png")
                save_attention_figure(result["attention_png"], image, best["words"],
                                      best["alphas"], best["probabilities"])
            results.append(result)
            if not args.json:
                print(f"{path}: {best['caption']}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def model_captions(model, vocabulary, paths, args, progress):
    from captioner.inference import caption_files
    return caption_files(model, vocabulary, paths, batch_size=args.batch_size,
                         progress=progress, max_length=args.max_length)


if __name__ == "__main__":
    sys.exit(run(main))
