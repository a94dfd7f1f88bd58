"""Round-trip helpers shared by the model tests."""

import numpy as np

import keras


def assert_round_trip(model, inputs, tmp_path, name="model.keras"):
    """Saves ``model`` as .keras, loads it with safe_mode on, and checks equal outputs."""
    path = str(tmp_path / name)
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    expected, actual = model(inputs), loaded(inputs)
    for key in expected:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(actual[key]),
                                   keras.ops.convert_to_numpy(expected[key]), rtol=0, atol=1e-6)
    return loaded


class CommandResult:
    """What a command line left: its exit status and its two output streams."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_command(main, *args):
    """Runs a command's ``main`` in this process as ``captioner.cli.run`` does for the real
    command (one-line errors, exit statuses), with its standard output and error captured.
    argparse's refusals (SystemExit) give their status as the process would."""
    import contextlib
    import io

    from captioner.cli import run
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = run(main, [str(arg) for arg in args])
        except SystemExit as leaving:
            code = leaving.code if isinstance(leaving.code, int) else 0 if leaving.code is None else 2
    return CommandResult(code, stdout.getvalue(), stderr.getvalue())
