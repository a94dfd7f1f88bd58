"""``RandomSampler``: each word drawn from the model's distribution."""

from keras import ops

from captioner.search.greedy import GreedySampler


class RandomSampler(GreedySampler):
    """Sampling by the Gumbel-max trick: ``noise`` (batch, max_length + 1, V), Gumbel
    noise, is added to each step's log-probabilities before the best word is picked, so
    each word is a sample of the model's distribution. The noise comes from the caller,
    which makes the samples repeatable on any backend (self-critical training draws its
    captions so). "log_probs" stay the model's own."""

    def __init__(self, noise, controls=None):
        super().__init__(controls)
        self.noise = noise

    def pick(self, t, scores):
        return scores + ops.take(self.noise, t, axis=1)
