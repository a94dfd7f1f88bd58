"""Data: image decoding, vocabularies, COCO-style annotations, synthetic data, batching."""
