"""The run folder's one writer (``run_folder.publish``), the model card rendered from the
checkpoint's state, and the run record that ``--resume DIR`` rebuilds a run from."""

import json
import os

import pytest

from captioner import resume
from captioner.errors import ConfigError
from captioner.training import card
from captioner.training.checkpoint import CHECKPOINT_DIR, POINTER, STATE
from captioner.training.record import RunRecord, read_record
from captioner.training.run_folder import publish

CURVES = (("loss", (("loss", "train loss"),)),)


def state_of(epochs=2, best=1, **more):
    history = [{"epoch": e, "loss": 1.0 / e, "val_cider": 0.1 * e} for e in
               range(1, epochs + 1)]
    return {"epoch": epochs, "history": history, "best_epoch": best, "wall_time": 90.0,
            "machine": "a test machine", **more}


def write(folder, names):
    os.makedirs(folder, exist_ok=True)
    for name in names:
        with open(os.path.join(folder, name), "w") as handle:
            handle.write(f"{name} of {os.path.basename(os.path.dirname(folder))}")


def test_out_mirrors_the_best_model_folder_and_never_keeps_an_older_epochs_file(tmp_path):
    out, best = tmp_path / "out", tmp_path / "epoch-0003" / "best"
    write(out, ["domain.json", "notes.txt"])  # the user's, before the run
    write(tmp_path / "epoch-0002" / "best", ["model.keras", "vocab.json", "domain.json",
                                             "config.json"])
    publish(str(out), str(tmp_path / "epoch-0002" / "best"), state_of(), CURVES)
    assert (out / "domain.json").read_text() == "domain.json of epoch-0002"
    write(best, ["model.keras", "vocab.json", "config.json", "MODEL_CARD.md"])
    state = state_of(test={"CIDEr": 0.5},
                     run_files={"skipped_images.json": {"training": {"a.png": {}}}})
    publish(str(out), str(best), state, CURVES)
    for name in ("model.keras", "vocab.json", "config.json", "MODEL_CARD.md"):
        assert (out / name).read_text() == (best / name).read_text()
    assert not (out / "domain.json").exists()  # it described an older epoch's encoder
    assert (out / "notes.txt").exists()  # a file that is not the run's own stays
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == {"best_epoch": 1, "history": state["history"], "test": {"CIDEr": 0.5}}
    assert json.loads((out / "skipped_images.json").read_text()) == {"training": {"a.png": {}}}
    assert (out / "training_curves.png").stat().st_size > 1000
    # a file of the same name that the run did not publish is never removed
    fresh = tmp_path / "fresh"
    write(fresh, ["domain.json"])
    publish(str(fresh), str(best), state_of(), CURVES)
    assert (fresh / "domain.json").read_text() == f"domain.json of {tmp_path.name}"


def test_the_model_card_is_rendered_from_the_state_with_its_test_scores():
    facts = card.CardFacts("a card", "What it is.", "captioner train --coco d --out o",
                           ["data: d"], "validation CIDEr-D",
                           (("Intended use", ["Tests."]),))
    text = card.render(facts, state_of(best=2))
    assert text.startswith("# a card\n\nWhat it is.\n\n## Intended use\n\nTests.\n")
    assert "- trained on: a test machine\n- this is epoch 2, the best by validation CIDEr-D" \
        in text and "| val_cider | 0.2000 |" in text and "Test split" not in text
    tested = card.render(facts, state_of(best=2, test={"CIDEr": 0.25, "images": 8},
                                         test_description="8 images, greedy"))
    assert tested.startswith(text.rstrip("\n"))
    assert tested.endswith("## Test split (8 images, greedy)\n\n| metric | value |\n|---|---|\n"
                           "| CIDEr | 0.2500 |\n")


def record_of(data):
    return RunRecord("caption", {"coco": str(data), "karpathy": None, "images": None,
                                 "splits": ["train", "val", "test"]},
                     {}, {"run": {"epochs": 2}}, {"feature_cache": True})


def checkpointed(out, record):
    """A run folder whose newest checkpoint holds ``record`` (what ``--resume DIR`` reads
    before it verifies anything)."""
    folder = out / CHECKPOINT_DIR / "epoch-0001"
    folder.mkdir(parents=True)
    (out / CHECKPOINT_DIR / POINTER).write_text(json.dumps({"folder": "epoch-0001",
                                                            "epoch": 1}))
    (folder / STATE).write_text(json.dumps({"epoch": 1, "record": record.to_dict()}))
    return out


def test_the_record_holds_absolute_paths_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record = record_of("data")
    assert record.data["coco"] == str(tmp_path / "data") and os.path.isabs(record.data["coco"])
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    for damaged in ({"task": "caption", "data": {}, "invocation": {}},
                    {"task": "caption", "data": "data", "model_config": {}, "train_config": {}},
                    {"task": "translate", "data": {}, "model_config": {}, "train_config": {}},
                    ["caption"]):
        with pytest.raises(ConfigError, match="run record is damaged"):
            RunRecord.from_dict(damaged)
    out = checkpointed(tmp_path / "run", record)
    assert read_record(out) == record
    # a damaged pointer or state is one ConfigError too, never a traceback
    (out / CHECKPOINT_DIR / POINTER).write_text("[1]")
    with pytest.raises(ConfigError, match="does not name a checkpoint folder"):
        read_record(out)
    (out / CHECKPOINT_DIR / POINTER).write_text(json.dumps({"folder": "epoch-0001"}))
    (out / CHECKPOINT_DIR / "epoch-0001" / STATE).write_text("[]")
    with pytest.raises(ConfigError, match="state.json is not a JSON object"):
        read_record(out)


def test_a_resume_refuses_what_would_make_another_run_and_finds_moved_data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    out = checkpointed(tmp_path / "run", record_of(data))
    with pytest.raises(ConfigError, match=r"keeps the run's own learning_rate, lstm_units"):
        resume(out, learning_rate=0.1, lstm_units=8)
    with pytest.raises(ConfigError, match=r"a caption run reads no --image-folder"):
        resume(out, data={"image_folder": str(tmp_path)})
    data.rename(tmp_path / "moved")
    with pytest.raises(ConfigError) as refused:
        resume(out, epochs=3)
    message = str(refused.value)
    assert f"read from {data}, which is not there any more" in message
    assert "give --coco with its new place" in message and "\n" not in message
    record = read_record(out)
    record.relocate(out, coco=str(tmp_path / "moved"))
    assert record.data["coco"] == str(tmp_path / "moved")
