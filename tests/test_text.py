from captioner.text import tokenize


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("A Red-Circle, on the LEFT.") == ["a", "red", "circle", "on", "the", "left"]
    assert tokenize("don't stop 2 shapes!") == ["don't", "stop", "2", "shapes"]
    assert tokenize("  ...  ") == []
