"""Fuzz the image decoder longer than the tests do.

    python -m benchmarks.fuzz_images [--examples 3000] [--seconds 5]

For every seed format of ``tests/fuzzing.py`` (PNG, JPEG, GIF, BMP, TIFF, WebP and their
16-bit, RGBA, palette and CMYK variants) hypothesis generates ``--examples`` broken files
(random bytes, truncations, header bytes overwritten, size fields set large, bytes
inserted) and ``load_image`` reads each: the property holds when it returns an (H, W, 3)
uint8 array or raises ImageError within ``--seconds``. Each format runs in its own
process, so that a crash of a C decoder is counted (and its input kept) instead of ending
the run. Prints per format how many files were decoded or refused, the slowest read, and
any failure with the input that caused it (saved under --out).
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fuzz_one(name, examples, seconds, out):
    """Runs in a child process: the property over ``examples`` broken ``name`` files."""
    import tempfile

    from hypothesis import HealthCheck, given, settings

    from tests.fuzzing import broken, outcome
    counts, slowest = {"decoded": 0, "refused": 0}, 0.0
    folder = tempfile.mkdtemp()
    failure = None

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(data=broken(name))
    def check(data):
        nonlocal slowest
        with open(os.path.join(out, f"{name}.last"), "wb") as handle:  # kept if we crash
            handle.write(data)
        started = time.perf_counter()
        counts[outcome(data, folder, seconds)] += 1
        slowest = max(slowest, time.perf_counter() - started)
    try:
        check()
    except Exception as error:  # hypothesis re-raises the shrunk failure
        failure = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        os.replace(os.path.join(out, f"{name}.last"), os.path.join(out, f"{name}.failure"))
    else:
        os.remove(os.path.join(out, f"{name}.last"))
    print(json.dumps({"counts": counts, "slowest": slowest, "failure": failure}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=3000, help="broken files per format")
    parser.add_argument("--seconds", type=float, default=5.0, help="time limit per file")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "fuzz_images"),
                        help="where failing inputs are kept")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.child:
        return fuzz_one(args.child, args.examples, args.seconds, args.out)
    import PIL

    from tests.fuzzing import SEEDS
    started, total, problems = time.time(), 0, 0
    print(f"Pillow {PIL.__version__}, {args.examples} broken files per format, "
          f"{args.seconds:.0f} s limit each")
    for name in sorted(SEEDS):
        child = subprocess.run([sys.executable, "-m", "tests.harness.fuzz_images", "--child",
                                name, "--examples",
                                str(args.examples), "--seconds", str(args.seconds),
                                "--out", args.out], capture_output=True, text=True,
                               env=dict(os.environ, PYTHONPATH=ROOT))
        if child.returncode != 0:
            problems += 1
            print(f"{name:14s} CRASHED (exit {child.returncode}); the input is "
                  f"{os.path.join(args.out, name + '.last')}")
            continue
        result = json.loads(child.stdout.strip().splitlines()[-1])
        counts = result["counts"]
        total += counts["decoded"] + counts["refused"]
        status = "ok" if result["failure"] is None else f"FAILED: {result['failure']}"
        problems += result["failure"] is not None
        print(f"{name:14s} decoded {counts['decoded']:5d}  refused {counts['refused']:5d}  "
              f"slowest {1000 * result['slowest']:7.1f} ms  {status}")
    print(f"{total} files in {time.time() - started:.0f} s: {problems} format(s) with a "
          "failure, hang or crash")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
