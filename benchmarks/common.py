"""What the benchmarks share: the options of a model scored on a split, naming the
machine a figure came from, printing a figure, and checking out an older revision to
measure beside this one."""

import argparse
import json
import os
import platform
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def split_parser(doc):
    """The command line of a benchmark that runs a model on a split of a COCO folder:
    --model, --coco, --split (test); ``doc`` is the module's docstring."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--coco", required=True)
    parser.add_argument("--split", default="test")
    return parser


def machine():
    """The GPU's name where JAX sees one, else the processor and its core count."""
    try:
        import jax
        devices = [d for d in jax.devices() if d.platform == "gpu"]
        if devices:
            return devices[0].device_kind
    except Exception:  # no JAX, or no usable device: the CPU is the machine
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def best_ms(search, inputs, repeats=5):
    """Milliseconds of one warm ``search.predict_on_batch(inputs)`` (a compiled search):
    the best of ``repeats`` calls after one that compiles."""
    search.predict_on_batch(inputs)  # compiles
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        search.predict_on_batch(inputs)
        times.append(time.perf_counter() - started)
    return 1000 * min(times)


def emit(**figure):
    """Prints one figure as a JSON line, with the machine it came from."""
    print(json.dumps({**figure, "machine": machine()}), flush=True)


def checkouts(work, old_commit=None):
    """[(name, folder)]: this checkout, and ``old_commit`` checked out as a git worktree
    under ``work`` (made once) where it is given."""
    found = [("this checkout", ROOT)]
    if old_commit:
        old = os.path.join(work, f"old-{old_commit}")
        if not os.path.isdir(old):
            subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", old,
                            old_commit], check=True, stdout=subprocess.DEVNULL)
        found.append((f"commit {old_commit}", old))
    return found
