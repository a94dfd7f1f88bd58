"""Resuming a run whose checkpoints were written before they held its record
(``captioner.training.record``): they held its command line instead, which is parsed
again, its paths made absolute from the folder it ran in."""

import os
import shlex

from captioner.errors import ConfigError

# the options that named files or folders
PATH_OPTIONS = ("--coco", "--karpathy", "--images", "--init", "--feature-cache",
                "--image-folder", "--weights")


def resumed_args(state, out, given, resumable, commands):
    """(arguments, start) of the run in ``out``: its checkpoint ``state``'s command line,
    parsed by its command (``commands``: {"caption" or "ram": (build_parser, start)}),
    with the ``resumable`` options of ``given`` (parsed arguments) on top, resumed."""
    saved = state.get("invocation")
    if not (isinstance(saved, dict) and isinstance(saved.get("argv"), list)
            and isinstance(saved.get("cwd"), str)):
        raise ConfigError(
            f"--resume {out}: its checkpoint records neither its run nor its command line "
            "(the run is older): give its options again with --resume, e.g. "
            f"`captioner train --coco DIR ... --out {out} --resume`")
    argv = absolute_paths([str(item) for item in saved["argv"]], saved["cwd"])
    task = "caption"
    if "--task" in argv and argv[argv.index("--task") + 1:][:1] == ["ram"]:
        at = argv.index("--task")
        argv, task = argv[:at] + argv[at + 2:], "ram"
    build, start = commands[task]
    parser = build()
    old, defaults = parser.parse_args(argv), vars(parser.parse_args([]))
    for dest, value in vars(given).items():
        if dest in resumable and dest in defaults and value != defaults[dest]:
            setattr(old, dest, value)
    old.out, old.resume = out, True
    old.command = " ".join(shlex.quote(a) for a in ["captioner", "train", *saved["argv"],
                                                    "--out", out])
    return old, start


def absolute_paths(argv, cwd):
    """``argv`` with its path options made absolute (from the recorded ``cwd``)."""
    def absolute(flag, value):
        candidate = os.path.join(cwd, value)
        if os.path.isabs(value) or (flag == "--weights" and not os.path.exists(candidate)):
            return value  # --weights imagenet, none
        return candidate
    result = []
    for item in argv:
        flag, equals, value = item.partition("=")
        if equals and flag in PATH_OPTIONS:  # --coco=data/coco
            result.append(f"{flag}={absolute(flag, value)}")
        elif result and result[-1] in PATH_OPTIONS:
            result.append(absolute(result[-1], item))
        else:
            result.append(item)
    return result
