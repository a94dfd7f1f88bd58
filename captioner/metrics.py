"""Caption metrics, computed by pycocoevalcap (the official coco-caption code).

The captions are tokenised with captioner's own tokenizer (lower case, punctuation
dropped) rather than the PTB tokenizer, which needs Java; for captions without punctuation
the two agree.
"""

from captioner.data.vocab import tokenize


def _prepare(references, candidates):
    keys = sorted(candidates)
    gts = {key: [" ".join(tokenize(text)) for text in references[key]] for key in keys}
    res = {key: [" ".join(tokenize(candidates[key]))] for key in keys}
    return gts, res


def bleu_scores(references, candidates):
    """Corpus BLEU-1..4 of ``candidates`` {id: caption} against ``references`` {id: [captions]}."""
    from pycocoevalcap.bleu.bleu import Bleu
    if not candidates:
        return {f"BLEU-{n}": 0.0 for n in range(1, 5)}
    gts, res = _prepare(references, candidates)
    scores, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {f"BLEU-{n}": float(score) for n, score in enumerate(scores, start=1)}
