import numpy as np

from captioner.data.coco import load_coco_split
from captioner.data.dataset import CaptionBatches, encode_captions
from captioner.data.images import load_image, preprocess_image
from captioner.data.vocab import Vocabulary


def test_encode_captions_shifts_targets_and_masks_padding():
    vocabulary = Vocabulary.build(["a red circle", "a square"])
    tokens, targets, mask = encode_captions(vocabulary, ["a red circle", "a square"], 4)
    a, red, circle, square = (vocabulary.index[w] for w in ("a", "red", "circle", "square"))
    assert tokens.tolist() == [[1, a, red, circle, 0], [1, a, square, 0, 0]]
    assert targets.tolist() == [[a, red, circle, 2, 0], [a, square, 2, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]
    tokens, targets, _ = encode_captions(vocabulary, ["a red circle a square"], 2)
    assert tokens.tolist() == [[1, a, red]] and targets.tolist() == [[a, red, 2]]


def test_training_batches_use_the_inference_preprocessing(synthetic_coco, vocabulary):
    records, _ = load_coco_split(synthetic_coco, "train")
    batches = CaptionBatches(records, vocabulary, 24, "small", batch_size=5, max_length=12, seed=1)
    x, y, w = batches[0]
    first = records[batches.order[0]]
    expected = preprocess_image(load_image(first.path), 24, "small")
    np.testing.assert_array_equal(x["images"][0], expected)
    assert x["images"].shape == (5, 24, 24, 3) and x["tokens"].shape == y.shape == w.shape == (5, 13)
    caption = first.captions[batches.choice[0]]
    assert vocabulary.decode(y[0]) == vocabulary.decode(vocabulary.encode(caption)[:12])


def test_epoch_order_is_a_function_of_seed_and_epoch(synthetic_coco, vocabulary):
    records, _ = load_coco_split(synthetic_coco, "train")
    first = CaptionBatches(records, vocabulary, 16, "small", 4, 12, seed=1)
    second = CaptionBatches(records, vocabulary, 16, "small", 4, 12, seed=1)
    first.set_epoch(3)
    second.set_epoch(0)
    assert not np.array_equal(first.order, second.order)
    second.set_epoch(3)
    assert np.array_equal(first.order, second.order) and first.choice == second.choice
    assert sorted(first.order.tolist()) == list(range(len(records)))
    assert len(first) == 6
