import pytest

from captioner.data.vocab import SPECIAL_TOKENS, Vocabulary
from captioner.errors import DataError


def test_build_orders_by_count_and_applies_min_count():
    vocabulary = Vocabulary.build(["a red circle", "a blue circle", "a circle"], min_count=2)
    assert tuple(vocabulary.words[:4]) == SPECIAL_TOKENS
    assert vocabulary.words[4:] == ["a", "circle"]  # 3 each, then alphabetical; red, blue < 2
    assert vocabulary.encode("a red circle") == [4, vocabulary.unk_id, 5]


def test_decode_stops_at_end_and_skips_pad_and_start():
    vocabulary = Vocabulary.build(["a red circle"])
    ids = [vocabulary.start_id] + vocabulary.encode("a red circle") + [vocabulary.end_id, 4]
    assert vocabulary.decode(ids) == ["a", "red", "circle"]


def test_json_round_trip(tmp_path):
    vocabulary = Vocabulary.build(["a red circle", "two blue squares"])
    vocabulary.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded.words == vocabulary.words and loaded.hash == vocabulary.hash
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_load_rejects_malformed_and_tampered_files(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json.*line 1"):
        Vocabulary.load(tmp_path / "bad.json")
    (tmp_path / "tampered.json").write_text(
        '{"words": ["<pad>", "<start>", "<end>", "<unk>", "a"], "hash": "0000"}')
    with pytest.raises(DataError, match="hash"):
        Vocabulary.load(tmp_path / "tampered.json")
    with pytest.raises(DataError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")
