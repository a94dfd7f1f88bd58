"""Caption metrics through pycocoevalcap, the official coco-caption code.

BLEU-1..4 (Papineni et al.), METEOR 1.5 (Java), ROUGE-L and CIDEr-D (pycocoevalcap's
``Cider`` is coco-caption's CIDEr-D: clipped counts and a length penalty, document
frequencies from the references of the evaluated set). Captions are tokenised by the
Stanford PTB tokenizer (Java), as coco-caption does, so the figures compare with published
ones. Where Java is missing, NLTK's Treebank tokenizer (the PTB conventions in pure
Python, no data to download) stands in, lower-cased with the punctuation dropped as
coco-caption does, and METEOR is skipped; the notes returned beside the scores say so.
``tokenizer="captioner"`` uses the project's own tokenizer instead. SPICE is not offered:
it downloads Stanford CoreNLP on first use.

Beside pycocoevalcap's BLEU, NLTK's ``corpus_bleu`` of the same tokens is reported
("BLEU-4 (nltk)"), since tutorials that do not run coco-caption report that one. The two
differ in how they pick the reference length of the brevity penalty and in coco-caption's
small smoothing constants, so on a few captions they can differ by several points.
"""

import contextlib
import shutil
import sys
import warnings

from captioner.io import silenced_stderr
from captioner.text import tokenize

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


def _treebank_tokens(references, candidates):
    """Tokens as coco-caption's PTB tokenizer gives them: lower case, parentheses as -lrb-
    / -rrb-, and its list of punctuation tokens dropped. (Treebank splits the period off
    an abbreviation that ends a caption, "p.m." -> "p.m"; the PTB tokenizer knows it.)"""
    from nltk.tokenize import TreebankWordTokenizer
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS
    tokenizer = TreebankWordTokenizer()

    def words(text):
        tokens = tokenizer.tokenize(text, convert_parentheses=True)
        return " ".join(t for t in (t.lower() for t in tokens) if t not in PUNCTUATIONS)
    gts = {key: [words(text) for text in references[key]] for key in candidates}
    res = {key: [words(candidates[key])] for key in candidates}
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

    ``tokenizer``: "ptb" (Java), "treebank" (NLTK), "captioner" (ours) or "auto" (PTB
    where Java is found, else Treebank).
    """
    if tokenizer not in ("auto", "ptb", "treebank", "captioner"):
        raise ValueError(f"Unknown tokenizer. Received: tokenizer={tokenizer!r}")
    notes = {"tokenizer": tokenizer, "skipped": {}}
    if tokenizer in ("auto", "ptb") and java_available():
        try:
            with _quiet_stdout(), silenced_stderr():  # Java's "PTBTokenizer tokenized ..."
                gts, res = _ptb_tokens(references, candidates)
            return gts, res, {**notes, "tokenizer": "ptb"}
        except (OSError, ValueError) as error:
            notes["skipped"]["ptb tokenizer"] = f"it failed ({error}); NLTK's Treebank used"
    elif tokenizer in ("auto", "ptb"):
        notes["skipped"]["ptb tokenizer"] = "Java not found; NLTK's Treebank tokenizer used"
    if tokenizer == "captioner":
        return (*_own_tokens(references, candidates), notes)
    return (*_treebank_tokens(references, candidates), {**notes, "tokenizer": "treebank"})


def caption_scores(references, candidates, metrics=METRICS, tokenizer="auto"):
    """Corpus scores of ``candidates`` {id: caption} against ``references`` {id: [captions]}.

    Args:
        metrics: any of "BLEU" (gives BLEU-1..4), "METEOR", "ROUGE-L", "CIDEr".
        tokenizer: see ``tokenize_for_scoring``.

    Returns:
        ``(scores, notes)``: {"BLEU-1": ..., "METEOR": ..., "ROUGE-L": ..., "CIDEr": ...}
        (floats, the metrics asked for and computable), and {"tokenizer": "ptb" or
        "captioner", "skipped": {what: why}, "per_image": {"CIDEr": {id: value}}}.
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
            scores["BLEU-4 (nltk)"] = nltk_corpus_bleu(gts, res)
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
            mean, each = Cider().compute_score(gts, res)  # each: in gts' key order
            scores["CIDEr"] = float(mean)
            notes["per_image"] = {"CIDEr": {key: float(v) for key, v in zip(gts, each)}}
    return scores, notes


def nltk_corpus_bleu(gts, res):
    """NLTK's corpus BLEU-4 of tokenised captions ({id: [references]}, {id: [candidate]})."""
    from nltk.translate.bleu_score import corpus_bleu
    keys = sorted(res, key=str)
    with warnings.catch_warnings():  # no 4-gram in common: NLTK warns, and scores 0
        warnings.simplefilter("ignore", UserWarning)
        return float(corpus_bleu([[reference.split() for reference in gts[key]] for key in keys],
                                 [res[key][0].split() for key in keys]))


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

