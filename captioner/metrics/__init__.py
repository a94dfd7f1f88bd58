"""How good the captions are, and how well they are grounded.

- ``captions``: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D through pycocoevalcap (coco-caption).
- ``lexicon``: which words name which object categories and attributes (plurals, synonyms).
- ``grounding``: object precision / recall and CHAIR (Rohrbach et al. 2018).
- ``attention``: attention correctness, the attention mass inside the named object's box.
- ``glimpses``: how often the Recurrent Attention Model's glimpses are centred on the object.
- ``diversity``: distinct-1/2, vocabulary used, novel captions, length, repeated n-grams.
"""

from captioner.metrics.attention import attention_correctness
from captioner.metrics.captions import caption_scores
from captioner.metrics.glimpses import glimpses_on_target
from captioner.metrics.grounding import object_grounding
from captioner.metrics.lexicon import ObjectLexicon

__all__ = ["ObjectLexicon", "attention_correctness", "caption_scores", "glimpses_on_target",
           "object_grounding"]
