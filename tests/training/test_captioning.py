import numpy as np
import pytest

from captioner.config import TrainConfig, preset
from captioner.data.coco import load_coco_split
from captioner.saving import load_keras_file
from captioner.training.captioning import CaptionTrainer, TrainingData
from captioner.training.checkpoint import latest_model_path

pytestmark = pytest.mark.backend


def make_trainer(synthetic_coco, out, epochs, dropout=0.0, pipeline="auto"):
    train, _ = load_coco_split(synthetic_coco, "train")
    val, _ = load_coco_split(synthetic_coco, "val")
    model_config = preset("tiny")
    model_config.decoder.dropout = dropout
    train_config = TrainConfig.of(epochs=epochs, batch_size=7, learning_rate=5e-3, seed=4,
                               validation_images=3, max_words=8, pipeline=pipeline,
                               length_bucket=8)  # 8 or 9 steps: two compilations on JAX
    return CaptionTrainer(TrainingData(train, val[:3], "test data"), str(out), model_config,
                          train_config)


def weights_of(folder):
    model = load_keras_file(latest_model_path(folder))
    return [np.asarray(w) for w in model.get_weights()]


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["tf.data", "python"])
def test_resume_continues_exactly_where_it_stopped(synthetic_coco, tmp_path, pipeline,
                                                   dropout=0.3):
    """With dropout, so that every random draw must follow from (seed, epoch) too; 24
    images in batches of 7, so the last batch of each epoch is filled up."""
    import keras
    if pipeline == "python" and keras.backend.backend() == "jax":
        pytest.skip("the batches are the pipeline's alone (tests/data); one JAX run suffices")

    def trainer(name):
        return make_trainer(synthetic_coco, tmp_path / name, 2, dropout, pipeline)
    straight = trainer("straight").run(progress=False)
    trainer("split").run(progress=False, stop_after=1)
    assert not (tmp_path / "split" / "domain.json").exists()  # made at the run's end
    resumed = trainer("split").run(resume=True, progress=False)
    assert len(resumed) == 2
    assert resumed[1]["loss"] == pytest.approx(straight[1]["loss"], abs=1e-6)
    for a, b in zip(weights_of(tmp_path / "straight"), weights_of(tmp_path / "split")):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert straight[1]["loss"] < straight[0]["loss"]  # and the loss falls
    # the domain summary is the last epoch's, inside its checkpoint, and OUT mirrors it
    for name in ("straight", "split"):
        best = tmp_path / name / "checkpoint" / "epoch-0002" / "best"
        assert (tmp_path / name / "domain.json").read_bytes() == \
            (best / "domain.json").read_bytes()
    assert (tmp_path / "straight" / "domain.json").read_bytes() == \
        (tmp_path / "split" / "domain.json").read_bytes()


def test_a_frozen_encoder_trains_on_cached_features_as_on_images(synthetic_coco, tmp_path):
    """With the backbone frozen, training reads the feature cache, and the decoder's
    first-epoch loss equals that of the same run fed images through the encoder."""
    histories = {}
    for cached in (True, False):
        trainer = make_trainer(synthetic_coco, tmp_path / f"cached{cached}", 1)
        trainer.model_config.encoder.fine_tune = False
        trainer.train_config.run.validation_images = 0
        trainer.data.val = []
        trainer.feature_cache, trainer.feature_dir = cached, str(tmp_path / "features")
        histories[cached] = trainer.run(progress=False)
    assert len(list((tmp_path / "features").glob("*.npy"))) == 1
    assert histories[True][0]["loss"] == pytest.approx(histories[False][0]["loss"], rel=1e-4)


def test_hard_attention_warm_up_anneals_the_expected_context_share(synthetic_coco, tmp_path):
    from keras import ops

    from captioner.models.captioner import create_captioner
    trainer = make_trainer(synthetic_coco, tmp_path, 6)
    trainer.model_config.decoder.attention = "hard"
    trainer.model_config.decoder.expected_context_rate = 0.5
    trainer.train_config.hard_warmup_epochs = 4
    trainer.model_config.vocab_size = 10
    model = create_captioner(trainer.model_config, seed=0)
    rates = []
    for epoch in range(6):
        trainer.start_epoch(model, epoch)
        rates.append(float(ops.convert_to_numpy(model.decoder.context_rate)))
    np.testing.assert_allclose(rates, [1.0, 0.875, 0.75, 0.625, 0.5, 0.5])


def test_no_image_is_read_before_the_first_step(synthetic_coco, tmp_path):
    """The default start at any scale: the images are checked as the first epoch reads
    them (not in a pass of their own), on the tf.data pipeline where TensorFlow is here."""
    import importlib.util

    import keras
    trainer = make_trainer(synthetic_coco, tmp_path / "run", 1)
    seen = {}

    class AtTheStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if not seen:
                seen["read"] = [len(data.images.cache) + len(data.bad) for data in
                                (trainer.train_batches, trainer.validation)]
                seen["pipeline"] = type(trainer.train_batches).__name__
    trainer.run(progress=False, callbacks=[AtTheStart()])
    assert seen["read"] == [0, 0]
    assert len(trainer.train_batches.images.cache) == len(trainer.data.train)  # read since
    has_tensorflow = importlib.util.find_spec("tensorflow") is not None
    assert (seen["pipeline"] == "TFCaptionBatches") == has_tensorflow
