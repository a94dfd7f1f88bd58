"""How varied a split's captions are, beside how right: scores that see a decoder which
writes every image the same generic sentence, which reference-based scores reward.

    distinct_1, distinct_2   distinct words / all words, distinct bigrams / all bigrams,
                             over the split's captions together (Li et al. 2016)
    vocabulary               how many distinct words the captions use
    mean_length              words per caption
    repeated_ngrams          share of captions that say some n-gram twice (trigrams by
                             default: "a red circle a red circle")
    novel                    share of captions that are no training caption, word for word
                             (where the training captions are given)
"""


def _ngrams(words, n):
    return [tuple(words[k:k + n]) for k in range(len(words) - n + 1)]


def repeats_ngram(words, n=3):
    """Whether ``words`` say some n-gram more than once."""
    grams = _ngrams(list(words), n)
    return len(set(grams)) < len(grams)


def diversity_scores(captions, training=None, n=3):
    """The scores of the module docstring for ``captions`` (one list of words per image);
    ``training``: the training captions (lists of words), for ``novel``."""
    captions = [list(words) for words in captions]
    scores = {}
    for size in (1, 2):
        grams = [gram for words in captions for gram in _ngrams(words, size)]
        scores[f"distinct_{size}"] = len(set(grams)) / len(grams) if grams else 0.0
    scores["vocabulary"] = float(len({word for words in captions for word in words}))
    scores["mean_length"] = sum(map(len, captions)) / len(captions) if captions else 0.0
    scores["repeated_ngrams"] = (sum(repeats_ngram(words, n) for words in captions)
                                 / len(captions) if captions else 0.0)
    if training is not None:
        seen = {tuple(words) for words in training}
        scores["novel"] = (sum(tuple(words) not in seen for words in captions) / len(captions)
                           if captions else 0.0)
    return scores
