from captioner.metrics.lexicon import ObjectLexicon, plural


def test_plurals():
    assert [plural(w) for w in ("dog", "bus", "person", "knife", "skis", "lady", "toy")] == \
        ["dogs", "buses", "people", "knives", "skis", "ladies", "toys"]


def test_mentions_find_synonyms_plurals_phrases_and_attributes():
    lexicon = ObjectLexicon(["dog", "bear", "teddy bear", "circle"],
                            {"color": ["red", "blue"], "size": ["small", "large"]})
    words = "two puppies near a teddy bear and a big red disc".split()
    found = [(m.category, dict(m.attributes), words[m.end - 1]) for m in lexicon.mentions(words)]
    assert found == [("dog", {}, "puppies"), ("teddy bear", {}, "bear"),
                     ("circle", {"color": "red", "size": "large"}, "disc")]


def test_from_instances_collects_categories_and_attribute_values():
    instances = {1: [{"category": "circle", "attributes": {"color": "red"}}],
                 2: [{"category": "square", "attributes": {"color": "blue", "size": "small"}}]}
    lexicon = ObjectLexicon.from_instances(instances, categories=["triangle"])
    assert lexicon.categories == ["circle", "square", "triangle"]
    mention, = lexicon.mentions("a little blue triangle".split())
    assert mention.category == "triangle"
    assert dict(mention.attributes) == {"color": "blue", "size": "small"}
