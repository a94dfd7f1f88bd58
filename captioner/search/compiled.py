"""``CompiledSearch``: a captioner's encoder, decoder set-up and a sampler as one Keras
model, which ``predict_on_batch`` compiles with XLA (``tf.function`` with ``jit_compile``
on TensorFlow, ``jax.jit`` on JAX) once per input shape; called directly it runs eagerly
(where training laid the model out across devices). The task object
(``captioner.tasks.ImageCaptioner.search``) keeps one per ``SearchConfig``.

    {"images": uint8 (batch, S, S, 3)} or {"features": (batch, L, D)}, and for a sampler
    that draws (``draws``) "seed" (batch,) uint32, one per image (0 if not given)
    -> the sampler's arrays; ``hypotheses(outputs)`` -> per image its hypotheses

With a grounding head, greedy search also gives "readings" (batch, max_length + 1,
groups), the head's labels of each word's attended place (hypotheses: "readings"
(n_words, groups)), and ``grounded`` > 0 re-scores the object words by them
(``captioner.search.grounded``). With ``statistics``, also "feature_mean" and
"feature_std" (batch, D) of the annotation vectors decoded from (``feature_statistics``),
for the out-of-domain check.
"""

import keras
import numpy as np
from keras import ops

from captioner.errors import ModelError
from captioner.search.greedy import GreedySampler
from captioner.search.grounded import GroundedDecoder, can_ground
from captioner.search.random import RandomSampler
from captioner.search.sampler import tile
from captioner.search.sampling import SamplingSampler


def feature_statistics(features):
    """The mean and the standard deviation over the grid of annotation vectors (batch, L,
    D): two arrays (batch, D), float32 (``captioner.domain``'s statistic)."""
    features = ops.cast(features, "float32")
    mean = ops.mean(features, axis=1)  # (batch, D)
    spread = ops.sqrt(ops.mean(ops.square(features - mean[:, None]), axis=1))
    return mean, spread


class CompiledSearch(keras.Model):
    """A captioner's search as one model (see the module docstring). It holds no weights
    of its own: the captioner's.

    Args:
        captioner: a ``captioner.models.captioner.Captioner``.
        sampler: a ``captioner.search.Sampler`` (``GreedySampler()``, ``BeamSampler(3)``).
        start_id, end_id: the vocabulary's <start> and <end>.
        max_length: the most words of a caption.
        statistics: also return the features' statistics.
        grounded: the weight of grounded decoding (0: off; needs a grounding head).
        words: the vocabulary's statement words that grounded decoding also judges, a
            list of scorers: ``captioner.search.spatial.SpatialWords`` (position and
            relation words, by the places attended), ``captioner.search.counting
            .NumberWords`` (number words, by the objects the head reads in the cells); for
            an ensemble, one such list per member.
    """

    def __init__(self, captioner, sampler, start_id, end_id, max_length, statistics=False,
                 grounded=0.0, words=(), **kwargs):
        super().__init__(**kwargs)
        if grounded and not can_ground(captioner):
            raise ModelError("grounded decoding needs a model with a grounding head "
                             "(trained where the data has boxes; --grounding)")
        self.grounded = float(grounded)  # the weight of the grounding head's agreement
        self.words = list(words) if grounded else []
        self.statistics = statistics
        self.captioner, self.sampler = captioner, sampler
        self.start_id, self.end_id, self.max_length = start_id, end_id, max_length
        self.greedy = isinstance(sampler, GreedySampler) and sampler.width == 1
        self.draws = isinstance(sampler, SamplingSampler)  # takes a "seed" (batch,) input
        self.built = True  # its weights are the built captioner's
        # XLA on every backend: Keras leaves it off for TensorFlow on a CPU, where the
        # loop's small ops then run one by one (beam 5 at batch 32: 9.7 ms a caption
        # without, 2.7 ms with, for ~0.6 s more compiling; benchmarks/decode_speed.py)
        self.jit_compile = True

    def features(self, inputs):
        """The annotation vectors (batch, L, D) of the inputs: given, or encoded."""
        if "features" in inputs:
            return ops.convert_to_tensor(inputs["features"])
        return self.captioner.encode(inputs["images"])

    def start(self, features):
        """(the step function, its initial state, memory, batch size) of the annotation
        vectors: the decoder's step, or under grounded decoding that step re-scored."""
        decoder = self.captioner.decoder
        if self.grounded:  # an ensemble's members each with their own head and words
            grounded = getattr(self.captioner, "grounded_decoder", None)
            decoder = grounded(self.grounded, self.words) if grounded else GroundedDecoder(
                decoder, self.captioner.grounding, self.grounded, self.words)
        memory = decoder.prepare(features)
        state = decoder.initial_state(memory, steps=self.max_length + 1)
        return decoder.step, state, memory, ops.shape(memory["annotations"])[0]

    def run(self, sampler, step, state, memory, batch_size):
        return sampler(step, state, memory, batch_size, self.start_id, self.end_id,
                       self.max_length)

    def call(self, inputs):
        features = self.features(inputs)
        sampler = self.sampler
        if self.draws:
            seeds = inputs.get("seed")
            sampler = sampler.seeded(ops.zeros((ops.shape(features)[0],), "uint32")
                                     if seeds is None else seeds)
        outputs = self.run(sampler, *self.start(features))
        head = getattr(self.captioner, "grounding", None)
        if head is not None and self.greedy:  # what the head reads where each word looked
            outputs = {**outputs, "readings": ops.cast(head.predictions(
                head(outputs["alphas"], features)), "int32")}  # (batch, slots, groups)
        if self.statistics:  # of what was decoded, for the out-of-domain check
            mean, spread = feature_statistics(features[0] if isinstance(features, list)
                                              else features)  # an ensemble's: its first's
            outputs = {**outputs, "feature_mean": mean, "feature_std": spread}
        return outputs

    def hypotheses(self, outputs):
        """This search's outputs (as ``predict_on_batch`` returns them) -> per image the
        list of hypotheses, best first."""
        outputs = {key: np.asarray(value) for key, value in outputs.items()
                   if not key.startswith("feature_")}
        hypotheses = self.sampler.hypotheses(outputs)
        if "readings" in outputs:  # the grounding head's label per word and group
            for row, (found,) in enumerate(hypotheses):
                found["readings"] = outputs["readings"][row, :len(found["tokens"])]
        return hypotheses


class SelfCriticalSearch(CompiledSearch):
    """What a step of self-critical training decodes, in one compiled call: each image's
    greedy caption (the baseline) and ``samples`` captions drawn from the model
    (``RandomSampler``).

    {"images" or "features" (batch, ...), "noise": Gumbel noise (batch * samples,
    max_length + 1, V)} -> {"greedy_" + key, "sampled_" + key: ``GreedySampler``'s arrays}
    (the samples image-major: image i's are rows i * samples ... (i + 1) * samples - 1).
    """

    def __init__(self, captioner, start_id, end_id, max_length, samples, **kwargs):
        super().__init__(captioner, GreedySampler(), start_id, end_id, max_length, **kwargs)
        self.samples = samples

    def call(self, inputs):
        step, state, memory, batch = self.start(self.features(inputs))
        greedy = self.run(self.sampler, step, state, memory, batch)
        sampler = RandomSampler(ops.convert_to_tensor(inputs["noise"]))
        sampled = self.run(sampler, step, tile(state, self.samples), tile(memory, self.samples),
                           batch * self.samples)
        return {**{f"greedy_{k}": v for k, v in greedy.items()},
                **{f"sampled_{k}": v for k, v in sampled.items()}}
