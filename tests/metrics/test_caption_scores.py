"""captioner's scoring wrapper against pycocoevalcap called directly."""

import shutil

import pytest

from captioner.metrics import caption_scores

REFERENCES = {1: ["A red circle.", "a red circle on the left", "one shape: a red circle"],
              2: ["a blue square and a green triangle", "two shapes, a blue square and a triangle"],
              3: ["a yellow diamond", "there is a big yellow diamond"]}
CANDIDATES = {1: "a red circle", 2: "a blue square and a red triangle", 3: "a yellow square"}


def direct_scores(gts, res, meteor=False):
    from nltk.translate.bleu_score import corpus_bleu
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU-{n}": value for n, value in enumerate(bleu, start=1)}
    scores["BLEU-4 (nltk)"] = corpus_bleu([[r.split() for r in gts[k]] for k in sorted(res)],
                                          [res[k][0].split() for k in sorted(res)])
    scores["ROUGE-L"] = Rouge().compute_score(gts, res)[0]
    scores["CIDEr"] = Cider().compute_score(gts, res)[0]
    if meteor:
        from pycocoevalcap.meteor.meteor import Meteor
        scores["METEOR"] = Meteor().compute_score(gts, res)[0]
    return scores


TOKENISED = {1: ["a red circle", "a red circle on the left", "one shape a red circle"],
             2: ["a blue square and a green triangle",
                 "two shapes a blue square and a triangle"],
             3: ["a yellow diamond", "there is a big yellow diamond"]}


@pytest.mark.parametrize("tokenizer", ["captioner", "treebank"])
def test_scores_without_java_equal_pycocoevalcap_and_nltk(tokenizer):
    """Both tokenizers that need no Java lower-case and drop the punctuation, as the PTB
    tokenizer of coco-caption does; the scores are pycocoevalcap's (and NLTK's corpus BLEU)
    of those tokens."""
    res = {key: [text] for key, text in CANDIDATES.items()}
    scores, notes = caption_scores(REFERENCES, CANDIDATES, ("BLEU", "ROUGE-L", "CIDEr"),
                                   tokenizer=tokenizer)
    assert notes["tokenizer"] == tokenizer
    assert scores == pytest.approx(direct_scores(TOKENISED, res))
    assert 0 < scores["BLEU-4"] < scores["BLEU-1"] < 1


@pytest.mark.skipif(shutil.which("java") is None, reason="the PTB tokenizer needs Java")
def test_treebank_tokens_are_the_ptb_tokenizers():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from captioner.metrics.captions import _treebank_tokens
    captions = {1: ["A man's hat, (red) and blue.", "Two dogs -- running!",
                    "it's 3:30 in the \"morning\"; ok?"]}
    ptb = PTBTokenizer().tokenize({1: [{"caption": c} for c in captions[1]]})
    treebank, _ = _treebank_tokens(captions, {1: "x"})
    assert treebank == ptb


@pytest.mark.skipif(shutil.which("java") is None, reason="PTB tokenizer and METEOR need Java")
@pytest.mark.slow  # starts Java processes (the PTB tokenizer, METEOR): about 14 s
def test_scores_with_the_ptb_tokenizer_and_meteor_equal_pycocoevalcap():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in REFERENCES.items()})
    res = tokenizer.tokenize({k: [{"caption": c}] for k, c in CANDIDATES.items()})
    scores, notes = caption_scores(REFERENCES, CANDIDATES)
    per_image = notes.pop("per_image")["CIDEr"]
    assert notes == {"tokenizer": "ptb", "skipped": {}}
    assert scores == pytest.approx(direct_scores(gts, res, meteor=True))
    from pycocoevalcap.cider.cider import Cider
    each = Cider().compute_score(gts, res)[1]  # per image, in gts' order
    assert per_image == pytest.approx(dict(zip(gts, each)))
    assert len(set(per_image.values())) == len(per_image)


def test_unknown_metric_and_missing_references_are_refused():
    with pytest.raises(ValueError, match="SPICE"):
        caption_scores(REFERENCES, CANDIDATES, ("SPICE",))
    with pytest.raises(ValueError, match="without references"):
        caption_scores(REFERENCES, {7: "a cat"})
