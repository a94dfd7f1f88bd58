"""Decoding: turn a decoder step function into captions (greedy and beam search), each
search one graph of ``keras.ops`` that compiles whole (``CompiledSearch``) and exports.

The search functions know nothing about the model. They take

    step(tokens (N,), state, memory) -> (logits (N, V), state, alpha (N, L))

where ``state`` (changes every step) and ``memory`` (fixed per image, e.g. the annotation
vectors) are nests of arrays whose first axis is N. Beam search folds the beams into that
axis (N = images x beams, image-major), tiles ``memory`` once and reorders ``state`` with
``keras.tree`` after each step, so all hypotheses of all images advance in one call.

A captioner's decoder gives the three: ``memory = decoder.prepare(features)``, ``state =
decoder.initial_state(memory, steps)`` (``steps``: the most steps a search runs, which a
Transformer's key/value cache is sized by) and ``decoder.step``.

``greedy_graph`` and ``beam_graph`` return fixed-size arrays; ``greedy_hypotheses`` and
``beam_hypotheses`` turn them into, per image, a list of hypotheses, best first::

    {"tokens": word ids (no <start>/<end>), "log_probs": one per word,
     "alphas": (n_words, L) attention of each word, "log_prob": the total log-probability
     (the <end> word's included when produced), "score": what the ranking used,
     "finished": whether the caption ended with <end> within ``max_length`` words}

A captioner's searches (the end of this module):

    CompiledSearch(captioner, start_id, end_id, max_length, beam_size=1, n_best=1,
                   length_penalty=0.0, min_length=0, statistics=False, grounded=0.0)
        {"images": uint8 (batch, S, S, 3)} or {"features": (batch, L, D)}
        -> ``greedy_graph``'s arrays (beam_size 1, n_best 1), else ``beam_graph``'s;
           ``hypotheses(outputs)`` -> the hypotheses. With a grounding head, greedy
           search also gives "readings" (batch, max_length + 1, groups), the head's
           labels of each word's attended place (hypotheses: "readings" (n_words,
           groups)), and ``grounded`` > 0 re-scores the object words by them
           (``captioner.models.grounding``).

is encoder, decoder set-up and search as one Keras model, which ``predict_on_batch``
compiles with XLA (``tf.function`` with ``jit_compile`` on TensorFlow, ``jax.jit`` on
JAX) once per input shape; called directly it runs eagerly (where training laid the
model out across devices). ``compiled_search(model, vocabulary, max_length, ...)`` keeps
one per model and settings. These graphs are the only searches: ``tests/reference_search.py``
holds the NumPy searches they are tested against, hypothesis for hypothesis.
"""

import weakref

import keras
import numpy as np
from keras import ops

from captioner.errors import ModelError


def _hypothesis(tokens, log_probs, alphas, end_log_prob, length_penalty):
    """A hypothesis dict; ``end_log_prob`` is None for an unfinished caption."""
    scored = list(log_probs) + ([end_log_prob] if end_log_prob is not None else [])
    total = float(np.sum(scored))
    alphas = np.asarray(alphas)  # (n_words, L), also for no words
    return {"tokens": [int(t) for t in tokens], "log_probs": [float(v) for v in log_probs],
            "alphas": alphas.reshape(len(tokens), alphas.shape[-1]), "log_prob": total,
            "score": normalised_score(total, len(scored), length_penalty),
            "finished": end_log_prob is not None}


def normalised_score(log_prob, length, length_penalty):
    """log_prob / length ** length_penalty: 0 ranks by probability, 1 by its mean per token.

    ``length`` counts the scored tokens: the words, and <end> when the caption has one.
    """
    return log_prob / max(length, 1) ** length_penalty


def _tile(nest, times):
    return keras.tree.map_structure(lambda x: ops.repeat(x, times, axis=0), nest)


def greedy_graph(step, state, memory, batch_size, start_id, end_id, max_length, noise=None):
    """Greedy search as one graph of ``keras.ops`` (``while_loop`` over at most
    ``max_length`` + 1 steps, stopping when every caption has ended): the most likely word
    at every step, for the whole batch at once; a caption ends at <end> or, unfinished,
    after ``max_length`` words. No round trip to the host per word, so that it compiles
    whole (``CompiledSearch``) and exports.

    ``noise``: Gumbel noise (batch, max_length + 1, V), added to each step's
    log-probabilities before the best word is picked: the Gumbel-max trick, so each word
    is a sample of the model's distribution (self-critical training draws its captions
    so; the noise comes from the caller, which makes the samples repeatable on any
    backend). "log_probs" stay the model's own.

    Returns a dict of arrays: "words" (batch, max_length) (<end> after a caption's end),
    "log_probs" (batch, max_length), "alphas" (batch, max_length, L), "lengths" (batch,)
    words before <end>, "end_log_prob" (batch,) and "finished" (batch,) bool.
    ``greedy_hypotheses`` turns them into hypotheses.
    """
    cells = ops.shape(memory["annotations"])[1]
    slots = max_length + 1  # the last step can only end a caption

    def body(t, tokens, state, running, words, log_probs, alphas, end_log_prob):
        logits, state, alpha = step(tokens, state, memory)
        scores = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        pick = scores if noise is None else scores + ops.take(noise, t, axis=1)
        # the first best word; top_k rather than argmax, whose TensorFlow form (a sign-bit
        # test by bitcast) ONNX has no operator for
        tokens = ops.cast(ops.top_k(pick, 1)[1][:, 0], "int32")
        chosen = ops.take_along_axis(scores, tokens[:, None], axis=1)[:, 0]
        ends = running & (tokens == end_id)
        end_log_prob = ops.where(ends, chosen, end_log_prob)
        running = running & ~ends
        here = ops.one_hot(t, slots, dtype="float32")[None]  # (1, slots): this word's slot
        words = words + ops.cast(here, "int32") * ops.where(running, tokens, end_id)[:, None]
        log_probs = log_probs + here * chosen[:, None]
        alphas = alphas + here[:, :, None] * ops.cast(alpha, "float32")[:, None, :]
        return t + 1, tokens, state, running, words, log_probs, alphas, end_log_prob

    def more(t, tokens, state, running, *rest):
        return (t < slots) & ops.any(running)

    start = (ops.convert_to_tensor(0, "int32"),
             ops.full((batch_size,), start_id, "int32"), state,
             ops.ones((batch_size,), "bool"),
             ops.zeros((batch_size, slots), "int32"), ops.zeros((batch_size, slots)),
             ops.zeros((batch_size, slots, cells)), ops.zeros((batch_size,)))
    _, _, _, running, words, log_probs, alphas, end_log_prob = ops.while_loop(more, body, start)
    lengths = ops.argmax(ops.cast(ops.concatenate(
        [words[:, :max_length], ops.full((batch_size, 1), end_id, "int32")], 1) == end_id,
        "int32"), axis=1)
    return {"words": words[:, :max_length], "log_probs": log_probs[:, :max_length],
            "alphas": alphas[:, :max_length], "lengths": ops.cast(lengths, "int32"),
            "end_log_prob": end_log_prob, "finished": ~running}


def greedy_hypotheses(outputs):
    """``greedy_graph``'s arrays (NumPy) -> per image ``[hypothesis]``."""
    results = []
    for row, length in enumerate(np.asarray(outputs["lengths"])):
        end = float(outputs["end_log_prob"][row]) if outputs["finished"][row] else None
        results.append([_hypothesis(outputs["words"][row, :length],
                                    outputs["log_probs"][row, :length],
                                    outputs["alphas"][row, :length], end, 0.0)])
    return results


def beam_graph(step, state, memory, batch_size, start_id, end_id, max_length, beam_size=3,
               n_best=1, length_penalty=0.0, min_length=0):
    """Beam search over all images at once, as one graph of ``keras.ops`` (a ``while_loop``
    of fixed-size arrays); ``beam_hypotheses`` turns its arrays into the ``n_best``
    hypotheses per image.

    Args:
        beam_size: K, hypotheses kept per image. K = 1 with length_penalty 0 is greedy
            search, exactly.
        n_best: hypotheses returned per image (at most K), best first.
        length_penalty: alpha of ``normalised_score``; 0 ranks by total log-probability,
            which favours short captions, larger values favour longer ones.
        min_length: <end> is not allowed before this many words.
        max_length: a caption has at most this many words.

    At each step every live hypothesis is extended by every word; of the best 2K
    candidates per image, those ending in <end> that rank among the best K are finished
    (as in fairseq), and the best K others stay live. An image is done when no live
    hypothesis can still beat its n-th best finished one: a live hypothesis'
    log-probability only falls, and its length is at most ``max_length`` + 1, which bounds
    its final score. If fewer than ``n_best`` finish within ``max_length`` words, the best
    unfinished ones fill the list (``finished: False``): there is always an answer.
    ``tests/reference_search.py`` is the same search in NumPy, step by step."""
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"Need beam_size >= 1 and 1 <= n_best <= beam_size. "
                         f"Received: beam_size={beam_size}, n_best={n_best}")
    k, n, words_max = beam_size, n_best, max_length
    cells = ops.shape(memory["annotations"])[1]
    memory, state = _tile(memory, k), _tile(state, k)
    inf = float("inf")

    def take(values, index, axis=1):  # values (B, X, ...), index (B, Y): rows per image
        index = ops.reshape(index, ops.shape(index)
                            + (1,) * (len(values.shape) - len(index.shape)))
        return ops.take_along_axis(values, index, axis=axis)

    def body(t, stopped, tokens, state, totals, words, log_probs, alphas, done,
             f_score, f_words, f_log_probs, f_alphas, f_length, f_total):
        logits, new_state, alpha = step(tokens, state, memory)
        scores = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        vocab = ops.shape(scores)[-1]
        scores = ops.reshape(scores, (batch_size, k, vocab))
        blocked = ops.cast(ops.one_hot(end_id, vocab), "bool") & (t < min_length)
        scores = ops.where(blocked[None, None], -inf, scores)
        alpha = ops.reshape(ops.cast(alpha, "float32"), (batch_size, k, cells))
        candidates = ops.reshape(totals[:, :, None] + scores, (batch_size, k * vocab))
        total, flat = ops.top_k(candidates, 2 * k)  # best first, ties by index
        parent, token = flat // vocab, flat % vocab
        rank = ops.arange(2 * k)[None]
        valid = ops.isfinite(total) & ~done[:, None]
        ends = valid & (token == end_id)
        # the finished: <end> among the best K candidates
        finish = ends & (rank < k)
        end_score = total / ops.cast(t + 1, "float32") ** length_penalty
        pool_score = ops.concatenate([f_score, ops.where(finish, end_score, -inf)], 1)
        pool_score, chosen = ops.top_k(pool_score, n)
        f_words = take(ops.concatenate([f_words, take(words, parent)], 1), chosen)
        f_log_probs = take(ops.concatenate([f_log_probs, take(log_probs, parent)], 1), chosen)
        f_alphas = take(ops.concatenate([f_alphas, take(alphas, parent)], 1), chosen)
        f_length = take(ops.concatenate(
            [f_length, ops.full((batch_size, 2 * k), t, "int32")], 1), chosen)
        f_total = take(ops.concatenate([f_total, total], 1), chosen)
        # the live: the best K candidates that do not end
        live = valid & (token != end_id)
        order = ops.argsort(ops.where(live, rank, 2 * k + rank), axis=1)[:, :k]
        kept = take(live, order)
        parents = ops.where(kept, take(parent, order), 0)
        new_tokens = ops.where(kept, take(token, order), end_id)
        new_totals = ops.where(kept, take(total, order), -inf)
        best_possible = ops.max(new_totals, axis=1) / float(words_max + 1) ** length_penalty
        nth = pool_score[:, n - 1]
        done = done | (ops.isfinite(nth) & (best_possible <= nth))
        stopped = ops.all(done) | (t == words_max)
        # extend the live hypotheses (not on the last step: the search stops first)
        here = ops.one_hot(t, words_max, dtype="float32")[None, None]  # (1, 1, T)
        word_log_probs = take(take(scores, parents), new_tokens[:, :, None], axis=2)[:, :, 0]
        extended = (
            take(words, parents) + ops.cast(here, "int32") * new_tokens[:, :, None],
            take(log_probs, parents) + here * word_log_probs[:, :, None],
            take(alphas, parents) + here[..., None] * take(alpha, parents)[:, :, None, :])
        rows = ops.reshape(ops.arange(batch_size)[:, None] * k + parents, (-1,))
        new_state = keras.tree.map_structure(lambda x: ops.take(x, rows, axis=0), new_state)
        keep = lambda old, new: ops.where(  # noqa: E731
            ops.reshape(stopped, (1,) * len(new.shape)), old, new)
        words, log_probs, alphas = (keep(o, e) for o, e in zip((words, log_probs, alphas),
                                                                extended))
        state = keras.tree.map_structure(keep, state, new_state)
        totals = keep(totals, new_totals)
        tokens = keep(tokens, ops.reshape(new_tokens, (-1,)))
        return (ops.where(stopped, t, t + 1), stopped, tokens, state, totals, words,
                log_probs, alphas, done, pool_score, f_words, f_log_probs, f_alphas,
                f_length, f_total)

    first = ops.where(ops.arange(k)[None] == 0, 0.0, -inf) * ops.ones((batch_size, 1))
    start = (ops.convert_to_tensor(0, "int32"), ops.convert_to_tensor(False),
             ops.full((batch_size * k,), start_id, "int32"), state, first,
             ops.zeros((batch_size, k, words_max), "int32"),
             ops.zeros((batch_size, k, words_max)), ops.zeros((batch_size, k, words_max, cells)),
             ops.zeros((batch_size,), "bool"), ops.full((batch_size, n), -inf),
             ops.zeros((batch_size, n, words_max), "int32"),
             ops.zeros((batch_size, n, words_max)), ops.zeros((batch_size, n, words_max, cells)),
             ops.zeros((batch_size, n), "int32"), ops.zeros((batch_size, n)))
    (t, _, _, _, totals, words, log_probs, alphas, _, f_score, f_words, f_log_probs, f_alphas,
     f_length, f_total) = ops.while_loop(lambda t, stopped, *rest: ~stopped, body, start)
    return {"live_length": t, "totals": totals, "words": words, "log_probs": log_probs,
            "alphas": alphas, "finished_score": f_score, "finished_words": f_words,
            "finished_log_probs": f_log_probs, "finished_alphas": f_alphas,
            "finished_length": f_length, "finished_total": f_total}


def beam_hypotheses(outputs, n_best, length_penalty=0.0):
    """``beam_graph``'s arrays (NumPy) -> per image the ``n_best`` hypotheses, best first,
    best first (the unfinished fill in where too few ended)."""
    results = []
    live_length = int(outputs["live_length"])
    for image in range(len(outputs["totals"])):
        hypotheses = []
        for slot in range(n_best):
            if not np.isfinite(outputs["finished_score"][image, slot]):
                break
            length = int(outputs["finished_length"][image, slot])
            log_probs = outputs["finished_log_probs"][image, slot, :length]
            end = float(outputs["finished_total"][image, slot]) - float(np.sum(log_probs))
            hypotheses.append(_hypothesis(outputs["finished_words"][image, slot, :length],
                                          log_probs,
                                          outputs["finished_alphas"][image, slot, :length],
                                          end, length_penalty))
        if len(hypotheses) < n_best:
            unfinished = [_hypothesis(outputs["words"][image, beam, :live_length],
                                      outputs["log_probs"][image, beam, :live_length],
                                      outputs["alphas"][image, beam, :live_length], None,
                                      length_penalty)
                          for beam in range(outputs["totals"].shape[1])
                          if np.isfinite(outputs["totals"][image, beam])]
            unfinished.sort(key=lambda h: -h["score"])
            hypotheses += unfinished[:n_best - len(hypotheses)]
        results.append(hypotheses)
    return results


# --- the searches of a captioner, compiled whole ---------------------------------------

_CACHE = weakref.WeakKeyDictionary()  # captioner -> {settings: CompiledSearch}


class CompiledSearch(keras.Model):
    """A captioner's search as one model (see the module docstring). It holds no weights
    of its own: the captioner's."""

    def __init__(self, captioner, start_id, end_id, max_length, beam_size=1, n_best=1,
                 length_penalty=0.0, min_length=0, statistics=False, grounded=0.0, **kwargs):
        super().__init__(**kwargs)
        if grounded and getattr(captioner, "grounding", None) is None:
            raise ModelError("grounded decoding needs a model with a grounding head "
                             "(trained where the data has boxes; --grounding)")
        self.grounded = float(grounded)  # the weight of the grounding head's agreement
        self.statistics = statistics  # also "feature_mean", "feature_std" (batch, D)
        self.captioner = captioner
        self.start_id, self.end_id, self.max_length = start_id, end_id, max_length
        self.beam_size, self.n_best = beam_size, n_best
        self.length_penalty, self.min_length = length_penalty, min_length
        self.greedy = beam_size == 1 and n_best == 1
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
        memory = decoder.prepare(features)
        state = decoder.initial_state(memory, steps=self.max_length + 1)
        step = decoder.step
        if self.grounded:
            memory = {**memory, "grounded_features": features}
            step = self.grounded_step
        return step, state, memory, ops.shape(features)[0]

    def grounded_step(self, tokens, state, memory):
        """The decoder's step with every object word re-scored by what is where it looked:
        log p(w) + weight * (log p_head(w's labels | the attended place) - log p_head(its
        reading there)) (``GroundingHead.word_scores``); the search renormalises it."""
        logits, state, alpha = self.captioner.decoder.step(tokens, state, memory)
        scores = ops.log_softmax(ops.cast(logits, "float32"), axis=-1) + self.grounded * \
            self.captioner.grounding.word_scores(alpha, memory["grounded_features"])
        return scores, state, alpha

    def call(self, inputs):
        features = self.features(inputs)
        step, state, memory, batch = self.start(features)
        if self.greedy:
            outputs = greedy_graph(step, state, memory, batch, self.start_id,
                                   self.end_id, self.max_length)
        else:
            outputs = beam_graph(step, state, memory, batch, self.start_id,
                                 self.end_id, self.max_length, self.beam_size, self.n_best,
                                 self.length_penalty, self.min_length)
        head = getattr(self.captioner, "grounding", None)
        if head is not None and self.greedy:  # what the head reads where each word looked
            outputs = {**outputs, "readings": ops.cast(head.predictions(
                head(outputs["alphas"], features)), "int32")}  # (batch, slots, groups)
        if self.statistics:  # of what was decoded, for the out-of-domain check
            features = ops.cast(features, "float32")
            mean = ops.mean(features, axis=1)  # (batch, D)
            spread = ops.sqrt(ops.mean(ops.square(features - mean[:, None]), axis=1))
            outputs = {**outputs, "feature_mean": mean, "feature_std": spread}
        return outputs

    def hypotheses(self, outputs):
        """This search's outputs (as ``predict_on_batch`` returns them) -> per image the
        list of hypotheses, best first, as the eager search gives them."""
        outputs = {key: np.asarray(value) for key, value in outputs.items()
                   if not key.startswith("feature_")}
        if self.greedy:
            hypotheses = greedy_hypotheses(outputs)
            if "readings" in outputs:  # the grounding head's label per word and group
                for row, (hypothesis,) in enumerate(hypotheses):
                    hypothesis["readings"] = outputs["readings"][row, :len(hypothesis["tokens"])]
            return hypotheses
        return beam_hypotheses(outputs, self.n_best, self.length_penalty)


GROUNDED = 1.0  # grounded decoding's weight where a model has a grounding head


def compiled_search(model, vocabulary, max_length, beam_size=1, n_best=1, length_penalty=0.0,
                    min_length=0, statistics=False, grounded=None):
    """The :class:`CompiledSearch` of a captioner for these settings (made once).
    ``grounded`` None: ``GROUNDED`` for a model with a grounding head, else 0."""
    if grounded is None:
        grounded = GROUNDED if getattr(model, "grounding", None) is not None else 0.0
    key = (vocabulary.start_id, vocabulary.end_id, int(max_length), int(beam_size),
           int(n_best), float(length_penalty), int(min_length), bool(statistics),
           float(grounded))
    searches = _CACHE.setdefault(model, {})
    if key not in searches:
        searches[key] = CompiledSearch(model, *key)
    return searches[key]


class SelfCriticalSearch(CompiledSearch):
    """What a step of self-critical training decodes, in one compiled call: each image's
    greedy caption (the baseline) and ``samples`` captions drawn from the model.

    {"images" or "features" (batch, ...), "noise": Gumbel noise (batch * samples,
    max_length + 1, V)} -> {"greedy_" + key, "sampled_" + key: ``greedy_graph``'s arrays}
    (the samples image-major: image i's are rows i * samples ... (i + 1) * samples - 1).
    """

    def __init__(self, captioner, start_id, end_id, max_length, samples, **kwargs):
        super().__init__(captioner, start_id, end_id, max_length, **kwargs)
        self.samples = samples

    def call(self, inputs):
        step, state, memory, batch = self.start(self.features(inputs))
        options = dict(start_id=self.start_id, end_id=self.end_id, max_length=self.max_length)
        greedy = greedy_graph(step, state, memory, batch, **options)
        tile = lambda nest: keras.tree.map_structure(  # noqa: E731
            lambda x: ops.repeat(x, self.samples, axis=0), nest)
        sampled = greedy_graph(step, tile(state), tile(memory), batch * self.samples,
                               noise=ops.convert_to_tensor(inputs["noise"]), **options)
        return {**{f"greedy_{k}": v for k, v in greedy.items()},
                **{f"sampled_{k}": v for k, v in sampled.items()}}
