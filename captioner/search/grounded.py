"""``GroundedDecoder``: grounded decoding as a decoder. It stands where a search expects a
decoder (``prepare``, ``initial_state``, ``step``) and re-scores the decoder's every step
by what the grounding head sees where the step looked:

    log p(w) + weight * (log p_head(w's labels | the attended place) - log p_head(its
    reading there))

for every object word (``GroundingHead.word_scores``), and with statement words (position
and relation words, ``captioner.search.spatial``; number words,
``captioner.search.counting``) every word they judge. The search renormalises the step.
``CompiledSearch`` decodes through one for ``grounded`` > 0; an ensemble wraps each member
that has a grounding head in its own, so every member judges its words by its own head
and grid before the members' distributions are averaged.
"""

from keras import ops


class GroundedDecoder:
    """``decoder`` re-scored by ``head`` at ``weight``, with ``words`` (the statement-word
    scorers; those not ``active`` are left out)."""

    def __init__(self, decoder, head, weight, words=()):
        self.decoder, self.head, self.weight = decoder, head, float(weight)
        self.words = [scorer for scorer in words if scorer.active]

    def prepare(self, features):
        memory = {**self.decoder.prepare(features), "grounded_features": features}
        for scorer in self.words:
            memory.update(scorer.prepare(self.head, features))
        return memory

    def initial_state(self, memory, steps=None):
        state = self.decoder.initial_state(memory, steps=steps)
        if not self.words:
            return state
        batch_size = ops.shape(memory["grounded_features"])[0]
        return {"decoder": state,
                "words": [scorer.initial_state(batch_size) for scorer in self.words]}

    def step(self, tokens, state, memory):
        decoder_state = state["decoder"] if self.words else state
        logits, decoder_state, alpha = self.decoder.step(tokens, decoder_state, memory)
        scores = ops.log_softmax(ops.cast(logits, "float32"), axis=-1) + self.weight * \
            self.head.word_scores(alpha, memory["grounded_features"])
        if not self.words:
            return scores, decoder_state, alpha
        followed = []
        for scorer, own in zip(self.words, state["words"]):
            extra, own = scorer.scores(scorer.follow(own, tokens), alpha, memory)
            scores = scores + self.weight * extra
            followed.append(own)
        return scores, {"decoder": decoder_state, "words": followed}, alpha


def can_ground(captioner):
    """Whether ``captioner`` (a ``Captioner`` or an ``Ensemble``) decodes grounded: it has a
    grounding head, or (an ensemble) one of its members has."""
    members = getattr(captioner, "members", [captioner])
    return any(getattr(member, "grounding", None) is not None for member in members)
