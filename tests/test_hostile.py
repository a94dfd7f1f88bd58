"""Hostile and careless inputs: no user file is changed, every mistake is one line (exit 2,
or 1 with the good inputs answered), never a traceback.

Each test takes a folder of a user's (or a crafted file), records every file's digest,
runs what a user would, and checks the digests again with the exit status and the lines
said."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from captioner.errors import DataError, OutputError
from tests.helpers import run_command

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model, vocabulary):
    from tests.helpers import save_model
    folder = tmp_path_factory.mktemp("model")
    save_model(str(folder), tiny_model, vocabulary)
    return folder


def test_a_copy_of_a_model_folder_is_not_a_run(model_dir, synthetic_coco, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    before = digests(copy)
    result = captioner("train", "--coco", synthetic_coco, "--out", copy)
    one_line(result, "holds files that are not a training run", "--overwrite")
    assert digests(copy) == before


def digests(folder):
    """{relative path: SHA-256 (or "link -> target")} of everything under ``folder``."""
    found = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = os.path.join(root, name)
            key = os.path.relpath(path, folder)
            if os.path.islink(path):
                found[key] = "link -> " + os.readlink(path)
            elif os.path.isfile(path):
                found[key] = hashlib.sha256(open(path, "rb").read()).hexdigest()
            elif not os.path.isdir(path):
                found[key] = "special"
    return found


def users_folder(tmp_path, name="mine"):
    """A folder of a user's: a published model folder's file names and a notes file, and a
    checkpoint/epoch-* folder it did not get from a run."""
    folder = tmp_path / name
    (folder / "checkpoint" / "epoch-0003").mkdir(parents=True)
    for file in ("model.keras", "config.json", "MODEL_CARD.md", "notes.txt",
                 "checkpoint/epoch-0003/training.keras"):
        (folder / file).write_text(f"the user's {file}")
    return folder


def one_line(result, *fragments, status=2):
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def captioner(*args):
    from captioner.commands.main import main
    return run_command(main, *args)


# --- 1, 2, 3, 7: only the project's own folders are written -----------------------------

@pytest.mark.parametrize("command", [
    ["train", "--coco", "{data}", "--out", "{mine}"],
    ["synth", "--out", "{mine}", "--train", "2", "--val", "1", "--test", "1"],
    ["export", "--model", "{data}", "--out", "{mine}"],
])
def test_a_command_refuses_a_users_folder_before_any_work(synthetic_coco, tmp_path, command):
    mine = users_folder(tmp_path)
    before = digests(mine)
    result = captioner(*[part.format(data=synthetic_coco, mine=mine) for part in command])
    one_line(result, f"--out {mine} holds files that are not", "--overwrite")
    assert digests(mine) == before
    assert os.listdir(tmp_path) == ["mine"]  # no partial folder beside it


def test_synth_with_overwrite_keeps_every_file_it_does_not_write(tmp_path):
    mine = users_folder(tmp_path)
    result = captioner("synth", "--out", mine, "--train", "2", "--val", "1", "--test", "1",
                       "--overwrite")
    assert result.returncode == 0, result.stderr
    assert (mine / "notes.txt").read_text() == "the user's notes.txt"
    assert (mine / "checkpoint" / "epoch-0003" / "training.keras").is_file()
    again = captioner("synth", "--out", mine, "--train", "2", "--val", "1", "--test", "1")
    assert again.returncode == 0, again.stderr  # its own data set now: replaced


def test_a_checkpoint_prune_removes_only_the_epochs_its_run_wrote(tmp_path):
    from captioner.training.checkpoint import Checkpoints
    (tmp_path / "epoch-0007").mkdir()
    (tmp_path / "epoch-0007" / "state.json").write_text("{}")  # not this run's
    checkpoints = Checkpoints(tmp_path)
    for epoch in (1, 2):
        def write_model(folder, epoch=epoch):
            (open(os.path.join(folder, "training.keras"), "wb")).write(bytes([epoch]))
        checkpoints.write(epoch, {"epoch": epoch, "history": [{}] * epoch}, write_model,
                          lambda folder: open(os.path.join(folder, "model.keras"), "w").close())
    assert sorted(os.listdir(tmp_path)) == ["epoch-0002", "epoch-0007", "latest.json"]
    assert json.loads((tmp_path / "latest.json").read_text())["written"] == ["epoch-0002"]


def test_a_viewer_link_is_followed_and_a_link_to_nothing_refused_before_any_work(tmp_path):
    from captioner.folders import claim
    from captioner.viewer.pages import ViewerWriter
    (tmp_path / "target").mkdir()
    os.symlink(tmp_path / "target", tmp_path / "link")
    for title in ("first", "second"):  # the second replaces the first through the link
        with ViewerWriter(tmp_path / "link", "captions", title) as html:
            html.add(np.zeros((4, 4, 3), np.uint8), {"name": "a", "hypotheses": []})
    assert os.path.islink(tmp_path / "link")
    assert "<title>second</title>" in (tmp_path / "target" / "index.html").read_text()
    assert sorted(os.listdir(tmp_path)) == ["link", "target"]
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    with pytest.raises(OutputError, match="is a link to .*gone, which is not there"):
        claim(tmp_path / "dangling", "viewer", "--html")
    (tmp_path / "file").write_text("x")
    os.symlink(tmp_path / "file", tmp_path / "to-file")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        claim(tmp_path / "to-file", "export", "--out")


def test_two_outputs_in_one_folder_are_refused(tmp_path):
    from types import SimpleNamespace

    from captioner.commands.common import check_outputs
    args = SimpleNamespace(attention_dir=str(tmp_path / "x"), html=str(tmp_path / "x"),
                           out=None, overwrite=False)
    with pytest.raises(OutputError, match="--attention-dir and --html name one folder"):
        check_outputs(args, scoring=False)


# --- 4, 11: names never collide, outputs are not read as inputs ----------------------------

def test_heat_map_names_never_collide():
    from captioner.commands.common import unique_stems
    stems = unique_stems(["a/x.png", "b/x.png", "c/x_2.png", "d/x_2.jpg", "x_3.png"])
    assert len(set(stems)) == 5 and stems[:2] == ["x", "x_2"]


def test_heat_maps_in_the_folder_captioned_are_not_captioned_next_time(tmp_path,
                                                                         synthetic_coco):
    from captioner.commands.caption import expand_inputs
    from captioner.folders import mark
    folder = tmp_path / "photos"
    shutil.copytree(os.path.join(synthetic_coco, "test2017"), folder)
    photos = sorted(os.listdir(folder))
    shutil.copy(folder / photos[0], folder / "000001_attention.png")
    mark(folder, "maps")
    paths, _ = expand_inputs([str(folder)])
    assert sorted(os.path.basename(p) for p in paths) == photos


# --- 5, 6, 11: odd names and files: written and printed losslessly, skipped not hung -------

def test_odd_files_and_names_are_answered_or_named_in_one_line(model_dir, synthetic_coco,
                                                               tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    source = os.path.join(synthetic_coco, "test2017", sorted(os.listdir(
        os.path.join(synthetic_coco, "test2017")))[0])
    undecodable = os.fsdecode(b"caf\xe9.png")  # Latin-1, not UTF-8
    controls = "clear\x1b[2J\x1b]0;owned\x07.png"
    for name in (undecodable, controls):
        shutil.copy(source, os.path.join(folder, name))
    os.mkfifo(folder / "pipe.png")
    result = run_command(_caption_main(), folder, "--model", model_dir, "--json",
                         "--attention-dir", tmp_path / "maps")
    assert result.returncode == 1, result.stderr  # two answered, the FIFO named
    answers = json.loads(result.stdout)
    assert {a["path"] for a in answers if "caption" in a} == {
        os.path.join(folder, undecodable), os.path.join(folder, controls)}
    assert [a["error"] for a in answers if "error" in a] == [
        f"Not a regular file (a FIFO): {folder / 'pipe.png'}"]
    assert "\x1b" not in result.stderr and "Traceback" not in result.stderr
    maps = [a["attention_png"] for a in answers if "caption" in a]
    assert all(os.path.isfile(path) for path in maps)
    text = run_command(_caption_main(), folder, "--model", model_dir)
    assert "\x1b" not in text.stdout and "clear\\x1b[2J" in text.stdout
    assert "caf\\xe9.png: " in text.stdout


def _caption_main():
    from captioner.commands.caption import main
    return main


def test_json_written_with_an_undecodable_name_reads_back_the_same(tmp_path):
    from captioner.io import read_json, write_json
    name = os.fsdecode(b"\xff\xfe/caf\xe9.png")
    write_json(tmp_path / "x.json", {"path": name, "word": "café"})
    assert read_json(tmp_path / "x.json") == {"path": name, "word": "café"}


def test_printed_names_escape_what_a_terminal_would_obey():
    from captioner.cli import printable
    assert printable("a\x1b]0;title\x07b\nc") == "a\\x1b]0;title\\x07b\\nc"
    assert printable(os.fsdecode(b"caf\xe9")) == "caf\\xe9"
    assert printable("ünïcode ok") == "ünïcode ok"


# --- 8, 10: annotations and JSON ---------------------------------------------------------

def coco_captions(tmp_path, images, annotations=None):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations or []}))
    return path


@pytest.mark.parametrize("images, annotations, expected", [
    ([{"id": 1, "file_name": "../secret.png"}], None, "outside the image folder"),
    ([{"id": 1, "file_name": "/etc/passwd"}], None, "outside the image folder"),
    ([{"id": 1, "file_name": 5}], None, "images[0].file_name is 5; expected a string"),
    ([{"id": 1, "file_name": None}], None, "images[0].file_name is null"),
    ([{"id": [1], "file_name": "a.png"}], None, "images[0].id is [1]; expected an integer"),
    ([{"id": 1, "file_name": "a.png"}, {"id": "2", "file_name": "b.png"}], None,
     "mixes integer and string ids"),
    ([{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}], None,
     "repeats the id 1"),
    ([{"id": 1, "file_name": "a.png", "width": "wide"}], None, "not a size in pixels"),
    ([{"id": 1, "file_name": "a.png"}], [{"image_id": {"x": 1}, "caption": "a"}],
     "annotations[0].image_id is {\"x\": 1}"),
])
def test_malformed_annotations_are_one_line_naming_the_file_and_field(tmp_path, images,
                                                                      annotations, expected):
    from captioner.data.coco import load_coco_captions
    path = coco_captions(tmp_path, images, annotations)
    with pytest.raises(DataError, match=None) as raised:
        load_coco_captions(path, str(tmp_path / "images"), check_files=False)
    assert str(path) in str(raised.value) and expected in str(raised.value)


def test_a_name_outside_the_image_folder_is_read_only_when_asked(tmp_path):
    from captioner.data.coco import load_coco_captions
    path = coco_captions(tmp_path, [{"id": 1, "file_name": "../elsewhere.png"}],
                         [{"image_id": 1, "caption": "a star"}])
    records = load_coco_captions(path, str(tmp_path / "images"), check_files=False,
                                 anywhere=True)
    assert records[0].path == str(tmp_path / "images" / ".." / "elsewhere.png")


def test_a_nesting_bomb_is_one_line(tmp_path):
    from captioner.io import read_json
    (tmp_path / "bomb.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match="nests its lists or objects too deeply"):
        read_json(tmp_path / "bomb.json", "COCO captions file")


# --- 9: a run folder is trusted no further than its own records ----------------------------

@pytest.mark.parametrize("pointer, expected", [
    ({"folder": "epoch-0001", "epoch": 1, "best_folder": "../../elsewhere"},
     "best_folder '../../elsewhere' is not an epoch folder"),
    ({"folder": "epoch-0001", "epoch": 1, "written": ["../x"]}, "written must list"),
])
def test_a_tampered_pointer_is_one_line(tmp_path, pointer, expected):
    from captioner.training.checkpoint import CheckpointError, Checkpoints
    (tmp_path / "latest.json").write_text(json.dumps(pointer))
    with pytest.raises(CheckpointError, match=expected):
        Checkpoints(tmp_path).latest()


def test_an_edited_run_record_is_one_line(tmp_path):
    from captioner.training.checkpoint import CheckpointError, Checkpoints

    checkpoints = Checkpoints(tmp_path)
    checkpoints.write(1, {"epoch": 1, "history": [{}], "record": {"command": "captioner"}},
                      lambda folder: open(os.path.join(folder, "training.keras"), "w").close())
    state = tmp_path / "epoch-0001" / "state.json"
    data = json.loads(state.read_text())
    data["record"]["command"] = "rm -rf ~"
    state.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="digest does not match"):
        checkpoints.latest()


# --- 10: model folders and model files ---------------------------------------------------

def test_a_domain_summary_of_another_size_is_one_line(model_dir, tmp_path):
    from captioner.errors import ModelError
    from captioner.tasks import load
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    rng = np.random.default_rng(0)
    (folder / "domain.json").write_text(json.dumps({
        "format": "captioner-domain-1", "mean": rng.normal(size=6).tolist(),
        "components": rng.normal(size=(2, 6)).tolist(), "variances": [1.0, 1.0],
        "residual_variance": 1.0, "threshold": 3.0, "images": 10}))
    from captioner.domain import FORMAT
    data = json.loads((folder / "domain.json").read_text())
    (folder / "domain.json").write_text(json.dumps({**data, "format": FORMAT}))
    with pytest.raises(ModelError, match="domain.json does not match the model"):
        load(str(folder))


def test_a_config_asking_for_a_huge_model_is_refused_before_any_weight():
    from captioner.config import ModelConfig
    from captioner.errors import ConfigError
    with pytest.raises(ConfigError, match="lstm_units must be at most 8,192"):
        ModelConfig.from_dict({"decoder": {"lstm_units": 10 ** 9}})
    with pytest.raises(ConfigError, match="vocab_size must be at most"):
        ModelConfig.from_dict({"vocab_size": 10 ** 12})


def test_a_model_file_with_a_lambda_is_refused(model_dir, tmp_path):
    import keras

    from captioner.errors import ModelError
    from captioner.tasks import load
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    inputs = keras.Input((2,))
    crafted = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    crafted.save(folder / "model.keras")
    with pytest.raises(ModelError):
        load(str(folder))


def test_titles_are_plain_text_not_tex(tmp_path):
    from captioner.render import save_glimpse_figure
    patches = np.zeros((2, 1, 4, 4, 1), np.float32)
    save_glimpse_figure(str(tmp_path / "g.png"), np.zeros((16, 16, 1), np.float32),
                        np.zeros((2, 2), np.float32), patches, title="$\\evil$ {")
    assert (tmp_path / "g.png").stat().st_size > 0


def test_a_feature_store_replaced_by_a_pickle_is_one_line(synthetic_coco, tmp_path):
    import keras

    from captioner.data.features import FeatureCache
    from captioner.models.encoder import Encoder
    folder = os.path.join(synthetic_coco, "val2017")
    paths = [os.path.join(folder, name) for name in sorted(os.listdir(folder))][:2]
    keras.utils.set_random_seed(0)
    encoder = Encoder("small", 32, 4, fine_tune=False)
    cache = FeatureCache(encoder, paths, str(tmp_path), progress=False)
    size = os.path.getsize(cache.path)
    pickled = np.empty(size // 64, dtype=object)  # a pickle, padded to the size written
    np.save(cache.path, pickled, allow_pickle=True)
    with open(cache.path, "ab") as handle:
        handle.write(b"\0" * max(0, size - os.path.getsize(cache.path)))
    with open(cache.path, "r+b") as handle:
        handle.truncate(size)
    with pytest.raises(DataError, match="is not an array of features"):
        FeatureCache(encoder, paths, str(tmp_path), progress=False)


def test_heat_maps_go_beside_a_users_files_but_never_over_them(model_dir, synthetic_coco,
                                                                tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    image = os.path.join(synthetic_coco, "test2017", sorted(os.listdir(
        os.path.join(synthetic_coco, "test2017")))[0])
    stem = os.path.splitext(os.path.basename(image))[0]
    result = run_command(_caption_main(), image, "--model", model_dir,
                         "--attention-dir", folder)
    assert result.returncode == 0, result.stderr
    assert (folder / "notes.txt").read_text() == "keep"
    assert (folder / f"{stem}_attention.png").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / f"{stem}_attention.png").write_text("a user's file of that name")
    before = digests(other)
    refused = run_command(_caption_main(), image, "--model", model_dir,
                          "--attention-dir", other)
    one_line(refused, f"already holds {stem}_attention.png", "--overwrite")
    assert digests(other) == before
