"""What this machine gives captioner: versions, the backend and its devices, mixed
precision, the optional parts each job needs, and the ImageNet weights at hand.

    captioner env [--json] [--need JOB ...]

One screen, or with ``--json`` one object. Exit status 1 when a job named with ``--need``
lacks something (each named on a ``missing:`` line), else 0. It imports the backend to
list its devices (a few seconds), nothing else heavy.
"""

import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sys

from captioner.cli import ArgumentParser, import_keras_quietly, run

PROG = "captioner env"

BACKBONES = ("resnet50", "inception_v3", "mobilenet_v2", "efficientnet_b0")

# a job -> what it needs: ("module", import name) or ("program", names on PATH) or
# ("device", None) (a GPU or TPU the backend sees), with the words that say why
JOBS = {
    "caption": [("module", "keras", "Keras")],
    "train": [("module", "keras", "Keras")],
    "evaluate": [("module", "keras", "Keras"), ("module", "pycocoevalcap", "the scorers")],
    "ptb": [("program", ("java",), "Java, for the PTB tokenizer and METEOR")],
    "export": [("module", "tensorflow", "TensorFlow, which writes every export")],
    "onnx": [("module", "tensorflow", "TensorFlow"), ("module", "tf2onnx", "tf2onnx"),
             ("module", "onnxruntime", "ONNX Runtime (pip install \".[onnx]\")")],
    "litert": [("module", "tensorflow", "TensorFlow, whose converter writes model.tflite")],
    "serve": [("module", "starlette", "Starlette"), ("module", "uvicorn", "uvicorn"),
              ("module", "multipart", "python-multipart (pip install \".[serve]\")")],
    "gpu": [("device", None, "a GPU or TPU that the backend sees")],
    "docs": [("module", "mkdocs", "MkDocs (pip install \".[docs]\")")],
    "browser": [("program", ("chromium", "chromium-browser", "google-chrome"),
                 "Chromium, for the viewer's browser tests and screenshots")],
}

PACKAGES = ("keras", "tensorflow", "jax", "jaxlib", "numpy", "pillow", "matplotlib",
            "pycocoevalcap", "tf2onnx", "onnxruntime", "ai-edge-litert", "starlette",
            "uvicorn")


def build_parser(prog=PROG):
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--need", nargs="+", choices=list(JOBS), default=[], metavar="JOB",
                        help="exit 1 when one of these jobs lacks something: "
                             + ", ".join(JOBS))
    return parser


def version_of(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def memory_bytes():
    """The machine's memory, or None where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def devices(backend):
    """The backend's devices: [{"name", "kind", "bfloat16"}], and the first error met."""
    found = []
    try:
        if backend == "tensorflow":
            import tensorflow as tf
            for device in tf.config.list_physical_devices():
                kind, bf16 = device.device_type, device.device_type == "TPU"
                if kind == "GPU":
                    details = tf.config.experimental.get_device_details(device)
                    capability = details.get("compute_capability") or (0, 0)
                    kind = details.get("device_name", "GPU")
                    bf16 = tuple(capability) >= (8, 0)
                found.append({"name": device.name, "kind": kind, "bfloat16": bf16})
        elif backend == "jax":
            import jax
            for device in jax.devices():
                found.append({"name": str(device), "kind": device.device_kind,
                              "bfloat16": device.platform in ("gpu", "tpu")})
        else:
            import keras
            found = [{"name": name, "kind": name.split(":")[0], "bfloat16": None}
                     for name in keras.distribution.list_devices()]
    except Exception as error:  # a broken CUDA install says so here, not as a traceback
        return found, f"{type(error).__name__}: {error}"
    return found, None


def imagenet_weights():
    """{"folder", "files": {backbone: {"file", "present"}}}: Keras' cache, the file each
    backbone's ImageNet weights are read from there, and whether it is."""
    from captioner.models.encoder import imagenet_file, imagenet_folder
    folder = imagenet_folder()
    files = {}
    for backbone in BACKBONES:
        size = 299 if backbone == "inception_v3" else 224
        path = os.path.join(folder, imagenet_file(backbone, size))
        files[backbone] = {"file": path, "present": os.path.isfile(path)}
    return {"folder": folder, "files": files}


def report():
    """What ``captioner env`` prints, as a dict."""
    from captioner.version import __version__
    import_keras_quietly()
    import keras

    from captioner.models.base import resolve_dtype_policy
    backend = keras.backend.backend()
    found, error = devices(backend)
    return {
        "captioner": __version__,
        "python": platform.python_version(), "executable": sys.executable,
        "platform": platform.platform(), "cpus": os.cpu_count(), "memory": memory_bytes(),
        "backend": backend,
        "packages": {name: version_of(name) for name in PACKAGES},
        "devices": found, "device_error": error,
        "dtype_policy": resolve_dtype_policy("auto"),
        "programs": {name: shutil.which(name) for name in (
            "java", "chromium", "chromium-browser", "google-chrome")},
        "imagenet_weights": imagenet_weights(),
    }


def missing(found, jobs):
    """The needs of ``jobs`` that ``found`` (a ``report``) lacks: ["job: what", ...]."""
    lacking = []
    for job in jobs:
        for kind, what, words in JOBS[job]:
            if kind == "module":
                ok = importlib.util.find_spec(what) is not None
            elif kind == "program":
                ok = any(found["programs"].get(name) for name in what)
            else:
                ok = any(not d["kind"].upper().startswith("CPU") for d in found["devices"])
            if not ok:
                lacking.append(f"{job}: {words}")
    return lacking


def text(found):
    def size(value):
        return f"{value / 2 ** 30:.1f} GiB" if value else "unknown"
    packages = found["packages"]
    lines = [
        f"captioner     {found['captioner']} (Python {found['python']}, {found['executable']})",
        f"platform      {found['platform']}, {found['cpus']} CPUs, {size(found['memory'])}",
        f"backend       {found['backend']} (KERAS_BACKEND; Keras {packages['keras']})",
        "packages      " + ", ".join(f"{name} {version}" for name, version in packages.items()
                                     if version and name != "keras"),
        "not installed " + (", ".join(name for name, version in packages.items()
                                      if not version) or "-"),
    ]
    for device in found["devices"]:
        bf16 = {True: "bfloat16", False: "no bfloat16", None: ""}[device["bfloat16"]]
        lines.append(f"device        {device['name']}: {device['kind']}"
                     + (f", {bf16}" if bf16 else ""))
    if found["device_error"]:
        lines.append(f"device error  {found['device_error']}")
    lines.append(f"precision     --dtype-policy auto trains in {found['dtype_policy']}")
    programs = found["programs"]
    browser = programs["chromium"] or programs["chromium-browser"] or programs["google-chrome"]
    java = programs["java"] or "not found: evaluate tokenizes with NLTK, no METEOR"
    lines.append(f"java          {java}")
    lines.append(f"chromium      {browser or 'not found: no browser tests or screenshots'}")
    weights = found["imagenet_weights"]
    have = [name for name, file in weights["files"].items() if file["present"]]
    lines.append(f"imagenet      {weights['folder']}: "
                 + (", ".join(have) if have else "none of the backbones' files")
                 + " (captioner env --json names each file)")
    return "\n".join(lines)


def main(argv=None, prog=PROG):
    args = build_parser(prog).parse_args(argv)
    found = report()
    lacking = missing(found, args.need)
    if args.json:
        print(json.dumps({**found, "missing": lacking}, indent=2))
    else:
        print(text(found))
        for line in lacking:
            print(f"missing       {line}")
    return 1 if lacking else 0


def entry(prog=PROG):
    """The ``captioner env`` command."""
    sys.exit(run(lambda argv: main(argv, prog=prog)))


if __name__ == "__main__":
    entry()
