"""Kill a training run at random moments, resume it each time, and compare the result with
a run that was never interrupted.

    python -m benchmarks.kill_resume [--kills 10] [--epochs 20] [--seed 0] [--task caption|ram]

What it compares: the same ``train.py`` run (tiny captioner on synthetic COCO-style data,
or a tiny RAM on scikit-learn's digits), once straight through and once killed with
SIGKILL ``--kills`` times and resumed with ``--resume`` after each kill. About half the
kills land at a random moment of the run (start-up, an epoch, validation, a write); the
others inside a checkpoint write, between two of its files: the runs are started with the
loop's test hook ``CAPTIONER_CHECKPOINT_PAUSE``, which names each file before writing it
and waits, and the kill comes while it waits. After every kill it checks that every file
the run left loads (``.keras`` with safe_mode, JSON, PNG), apart from the temporary files
of interrupted writes, which the next start removes. At the end it prints the largest
difference between the two runs' final weights (the last checkpoint and the published
best model; the goal is 0 on a CPU with one backend) and between their loss histories.
"""

import argparse
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PHASES = ("training.keras", "best model folder", "state.json", "rename of the epoch folder",
          "latest.json", "removal of older checkpoints")


def train_command(task, data, out, epochs, seed, validation=True):
    """The train.py command line of the compared run (tiny, so that a kill costs seconds);
    ``validation=False``: no validation split (the best epoch by training loss)."""
    if task == "ram":
        return [sys.executable, os.path.join(ROOT, "train.py"), "--task", "ram", "--digits",
                "cluttered", "--digit-source", "sklearn", "--canvas", "32", "--glimpses", "2",
                "--patch", "4", "--scales", "2", "--batch-size", "128", "--epochs", str(epochs),
                "--seed", str(seed), "--out", out, "--no-progress"]
    return [sys.executable, os.path.join(ROOT, "train.py"), "--coco", data, "--out", out,
            "--epochs", str(epochs), "--seed", str(seed), "--image-size", "32", "--width", "8",
            "--lstm-units", "32", "--embedding-dim", "16", "--attention-units", "16",
            "--batch-size", "8", "--validation-images", "4", "--max-words", "8",
            "--dropout", "0.3", "--test-split", "none", "--no-progress"] \
        + ([] if validation else ["--val-split", "none"])


class Run:
    """A train.py process whose standard error is read line by line as it comes."""

    def __init__(self, command, pause=None):
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
        if pause:
            env["CAPTIONER_CHECKPOINT_PAUSE"] = str(pause)
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, env=env)
        self.lines, self.log = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stderr:
            self.log.append(line)
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text, timeout):
        """Waits for a line holding ``text``; False if the process ended first."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if line is None:
                return False
            if text in line:
                return True
        return False

    def kill(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def finish(self, timeout=900):
        code = self.process.wait(timeout)
        if code != 0:
            raise RuntimeError(f"train.py exited {code}:\n" + "".join(self.log[-30:]))


def check_files(out):
    """Loads every file under ``out`` (temporary ones of killed writes aside); returns
    (files loaded, temporary files seen). Raises on a file that does not load."""
    from PIL import Image

    from captioner.io import PARTIAL
    from captioner.saving import load_keras_file
    loaded, partial = 0, 0
    for root, folders, names in os.walk(out):
        if PARTIAL in root:
            continue
        partial += sum(PARTIAL in name for name in folders)
        for name in names:
            path = os.path.join(root, name)
            if PARTIAL in name:
                partial += 1
                continue
            if name.endswith(".keras"):
                load_keras_file(path)
            elif name.endswith(".json"):
                with open(path, encoding="utf-8") as handle:
                    json.load(handle)
            elif name.endswith(".png"):
                with Image.open(path) as image:
                    image.load()
            loaded += 1
    return loaded, partial


def final_weights(out):
    """(the last checkpoint's weights, the published model's weights) of a finished run."""
    from captioner.saving import load_keras_file
    from captioner.training.checkpoint import latest_model_path
    return ([w for w in load_keras_file(latest_model_path(out)).get_weights()],
            [w for w in load_keras_file(os.path.join(out, "model.keras")).get_weights()])


def largest_difference(a, b):
    import numpy as np
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(a, b))


def random_moments(kills, seed, longest, checkpoint_share=0.5):
    """``kills`` kill moments: ("checkpoint", phase, n), the n-th announcement of a phase
    of a checkpoint write, or ("time", seconds) after the start."""
    rng = random.Random(seed)
    every_epoch = [phase for phase in PHASES if phase != "best model folder"]  # not always
    return [("checkpoint", rng.choice(every_epoch), rng.randint(1, 2))
            if rng.random() < checkpoint_share else ("time", rng.uniform(1.0, longest))
            for _ in range(kills)]


def kill_and_resume(command, moments, pause=0.3, say=print, finish=True):
    """Runs ``command`` with --resume, killed at each of ``moments`` (``random_moments``)
    in turn, then (``finish``) to the end; returns what each kill hit."""
    out = command[command.index("--out") + 1]
    hits = []
    for number, moment in enumerate(moments, start=1):
        run = Run(command + ["--resume"], pause)
        if moment[0] == "checkpoint":
            _, phase, times = moment
            reached = all(run.wait_for(f"checkpoint: {phase}", 600) for _ in range(times))
            what = f"inside a checkpoint write, before {phase}" if reached else \
                "after the run ended (the phase never came)"
        else:
            time.sleep(moment[1])
            what = f"at {moment[1]:.1f} s"
        ended = run.process.poll() is not None
        run.kill()
        loaded, partial = check_files(out)
        epoch = _checkpoint_epoch(out)
        hits.append({"kill": number, "moment": what, "ended_before": ended,
                     "checkpoint_epoch": epoch, "files_loaded": loaded, "partial_files": partial})
        say(f"kill {number}: {what}{' (the run had ended)' if ended else ''}; checkpoint at "
            f"epoch {epoch}; {loaded} files load, {partial} temporary left")
    if finish:
        Run(command + ["--resume"]).finish()
    return hits


def _checkpoint_epoch(out):
    from captioner.training.checkpoint import Checkpoints
    found = Checkpoints(os.path.join(out, "checkpoint")).latest()
    return found[1]["epoch"] if found else 0


def histories(out):
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as handle:
        return [row["loss"] for row in json.load(handle)["history"]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", choices=("caption", "ram"), default="caption")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "kill_resume"))
    parser.add_argument("--longest", type=float, default=None,
                        help="latest random kill moment after a start, in seconds (default: "
                             "half the uninterrupted run's time)")
    args = parser.parse_args(argv)
    from captioner.cli import import_keras_quietly
    import_keras_quietly()
    import keras
    shutil.rmtree(args.out, ignore_errors=True)
    data = os.path.join(args.out, "data")
    if args.task == "caption":
        from captioner.data.synthetic import generate
        generate(data, seed=3, splits={"train": 24, "val": 6})
    straight, killed = os.path.join(args.out, "straight"), os.path.join(args.out, "killed")
    started = time.time()
    Run(train_command(args.task, data, straight, args.epochs, args.seed)).finish()
    seconds = time.time() - started
    print(f"uninterrupted run: {seconds:.0f} s", flush=True)
    moments = random_moments(args.kills, args.seed, args.longest or 0.5 * seconds)
    hits = kill_and_resume(train_command(args.task, data, killed, args.epochs, args.seed),
                           moments, say=lambda text: print(text, flush=True))
    (last_a, best_a), (last_b, best_b) = final_weights(straight), final_weights(killed)
    loaded, partial = check_files(killed)
    print(f"\n{args.task} run, {args.epochs} epochs, {keras.backend.backend()} backend, "
          f"{os.cpu_count()} CPU cores: {args.kills} SIGKILLs "
          f"({sum('inside' in h['moment'] for h in hits)} inside a checkpoint write)")
    print(f"largest weight difference, last checkpoint: {largest_difference(last_a, last_b):.3g}")
    print(f"largest weight difference, published best model: "
          f"{largest_difference(best_a, best_b):.3g}")
    print(f"largest loss difference per epoch: "
          f"{largest_difference(histories(straight), histories(killed)):.3g}")
    print(f"after the last resume: {loaded} files load, {partial} temporary files left")


if __name__ == "__main__":
    main()
