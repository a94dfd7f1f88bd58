"""Caption metrics through pycocoevalcap, the official coco-caption code.

BLEU-1..4 (Papineni et al.), METEOR 1.5 (Java), ROUGE-L and CIDEr-D (pycocoevalcap's
``Cider`` is coco-caption's CIDEr-D: clipped counts and a length penalty, document
frequencies from the references of the evaluated set). Captions are tokenised by the
Stanford PTB tokenizer (Java), as coco-caption does, so the figures compare with published
ones. Where Java is missing, the captions are tokenised by captioner's own tokenizer
(lower case, punctuation dropped: the same words for plain captions) and METEOR is skipped;
the notes returned beside the scores say so. SPICE is not offered: it downloads Stanford
CoreNLP on first use.
"""

import contextlib
import shutil
import sys

from captioner.data.vocab import tokenize
from captioner.io import silenced_stderr

METRICS = ("BLEU", "METEOR", "ROUGE-L", "CIDEr")


def java_available():
    return shutil.which("java") is not None


@contextlib.contextmanager
def _quiet_stdout():
    """pycocoevalcap prints its progress on stdout, which belongs to --json output."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _own_tokens(references, candidates):
    gts = {key: [" ".join(tokenize(text)) for text in references[key]] for key in candidates}
    res = {key: [" ".join(tokenize(candidates[key]))] for key in candidates}
    return gts, res


def _ptb_tokens(references, candidates):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({key: [{"caption": text} for text in references[key]]
                              for key in candidates})
    filled = {key: text for key, text in candidates.items() if text.strip()}
    res = tokenizer.tokenize({key: [{"caption": text}] for key, text in filled.items()}) \
        if filled else {}
    res = {key: res.get(key, [""]) for key in candidates}  # an empty caption stays empty
    return gts, res


def tokenize_for_scoring(references, candidates, tokenizer="auto"):
    """(gts, res, notes): ``{id: [tokenised references]}``, ``{id: [tokenised candidate]}``.

    ``tokenizer``: "ptb" (Java), "captioner" (ours) or "auto" (PTB where Java is found).
    """
    notes = {"tokenizer": "captioner", "skipped": {}}
    if tokenizer in ("auto", "ptb") and java_available():
        try:
            with _quiet_stdout(), silenced_stderr():  # Java's "PTBTokenizer tokenized ..."
                gts, res = _ptb_tokens(references, candidates)
            return gts, res, {**notes, "tokenizer": "ptb"}
        except (OSError, ValueError) as error:
            notes["skipped"]["ptb tokenizer"] = f"it failed ({error}); captioner's tokenizer used"
    elif tokenizer in ("auto", "ptb"):
        notes["skipped"]["ptb tokenizer"] = "Java not found; captioner's tokenizer used"
    gts, res = _own_tokens(references, candidates)
    return gts, res, notes


def caption_scores(references, candidates, metrics=METRICS, tokenizer="auto"):
    """Corpus scores of ``candidates`` {id: caption} against ``references`` {id: [captions]}.

    Args:
        metrics: any of "BLEU" (gives BLEU-1..4), "METEOR", "ROUGE-L", "CIDEr".
        tokenizer: see ``tokenize_for_scoring``.

    Returns:
        ``(scores, notes)``: {"BLEU-1": ..., "METEOR": ..., "ROUGE-L": ..., "CIDEr": ...}
        (floats, the metrics asked for and computable), and {"tokenizer": "ptb" or
        "captioner", "skipped": {what: why}}.
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"Unknown metrics {unknown}; known: {', '.join(METRICS)}")
    missing = sorted(set(candidates) - set(references), key=str)
    if missing:
        raise ValueError(f"Captions for {len(missing)} image(s) without references, "
                         f"e.g. image_id {missing[0]}")
    if not candidates:
        return {}, {"tokenizer": None, "skipped": {"all": "no captions to score"}}
    gts, res, notes = tokenize_for_scoring(references, candidates, tokenizer)
    scores = {}
    with _quiet_stdout():
        if "BLEU" in metrics:
            from pycocoevalcap.bleu.bleu import Bleu
            bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
            scores.update({f"BLEU-{n}": float(value) for n, value in enumerate(bleu, start=1)})
        if "METEOR" in metrics:
            if java_available():
                scores["METEOR"] = _meteor(gts, res)
            else:
                notes["skipped"]["METEOR"] = "Java not found (METEOR 1.5 is a Java program)"
        if "ROUGE-L" in metrics:
            from pycocoevalcap.rouge.rouge import Rouge
            scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
        if "CIDEr" in metrics:
            from pycocoevalcap.cider.cider import Cider
            scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return scores, notes


def _meteor(gts, res):
    from pycocoevalcap.meteor.meteor import Meteor
    # METEOR's Java process is given one line per caption: an empty one would stall it.
    res = {key: [value[0] or "<empty>"] for key, value in res.items()}
    scorer = Meteor()
    try:
        score, _ = scorer.compute_score(gts, res)
    finally:
        scorer.meteor_p.kill()
        scorer.meteor_p.wait()
    return float(score)

