"""The fast version of ``tests/harness/kill_resume.py``: a captioner run killed with SIGKILL
inside two checkpoint writes (epoch 1's, between the model file and the best model; epoch
2's, after its folder and before the pointer) and resumed each time ends with the
uninterrupted run's weights, bit for bit, and every file it left loads."""

import os

import numpy as np
import pytest

from tests.harness import kill_resume as bench


@pytest.mark.slow
def test_killed_inside_checkpoint_writes_and_resumed_equals_uninterrupted(synthetic_coco,
                                                                          tmp_path):
    """The uninterrupted run and the last resume run here, in this process; the killed
    ones in their own (a kill needs a process)."""
    from captioner.commands.train import main
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    command = bench.train_command("caption", synthetic_coco, killed, 3, 1, validation=False)
    assert main(bench.train_command("caption", synthetic_coco, straight, 3, 1,
                                    validation=False)[2:]) == 0
    moments = [("checkpoint", "best model folder", 1),  # epoch 1's write: nothing to resume
               ("checkpoint", "latest.json", 2)]  # epoch 2's folder is whole, not pointed to
    hits = bench.kill_and_resume(command, moments, pause=0.2, say=lambda text: None,
                                 finish=False)
    assert [hit["moment"].startswith("inside") for hit in hits] == [True, True]
    assert [hit["checkpoint_epoch"] for hit in hits] == [0, 1]
    assert os.path.isdir(os.path.join(killed, "checkpoint", "epoch-0002"))
    assert all(hit["files_loaded"] > 0 for hit in hits)
    assert main(command[2:] + ["--resume"]) == 0
    (last_a, best_a), (last_b, best_b) = bench.final_weights(straight), \
        bench.final_weights(killed)
    for a, b in zip(last_a + best_a, last_b + best_b):
        np.testing.assert_array_equal(a, b)
    assert bench.histories(straight) == bench.histories(killed)
    assert bench.check_files(killed)[1] == 0  # no temporary file left after the last run
