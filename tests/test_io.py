"""Atomic writes: a write that fails, whatever the reason, leaves the previous content and
no half-written file; one the system refuses is one line for the user."""

import errno
import os
import resource
import signal

import pytest

from captioner import io
from captioner.errors import OutputError


def listing(folder):
    return sorted(os.listdir(folder))


def test_an_interrupted_write_leaves_the_old_content_and_no_temporary_file(tmp_path):
    target = tmp_path / "scores.json"
    io.write_json(target, {"epoch": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as temporary:
            with open(temporary, "w") as handle:
                handle.write('{"epo')
            raise RuntimeError("killed mid-write")
    assert io.read_json(target) == {"epoch": 1} and listing(tmp_path) == ["scores.json"]


def test_a_write_the_kernel_refuses_half_way_is_one_line_and_leaves_nothing(tmp_path):
    """RLIMIT_FSIZE: the kernel refuses to grow a file past 1 kB (EFBIG), as a full disk
    refuses with ENOSPC."""
    target = tmp_path / "curves.json"
    io.write_json(target, {"old": True})
    saved = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, saved[1]))
    try:
        with pytest.raises(OutputError, match=f"Cannot write {target}: File too large"):
            io.write_text(target, "x" * 5000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, saved)
        signal.signal(signal.SIGXFSZ, handler)
    assert io.read_json(target) == {"old": True} and listing(tmp_path) == ["curves.json"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="Cannot write .*Permission denied"):
            io.write_text(folder / "out.txt", "text")
    finally:
        folder.chmod(0o755)


def test_refused_writes_are_named_and_other_errors_are_left_alone(tmp_path):
    for number in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
        failure = io.write_failure(OSError(number, os.strerror(number)), "out/x.png")
        assert str(failure) == f"Cannot write out/x.png: {os.strerror(number)}"
    wrapped = RuntimeError("zip failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert "No space left" in str(io.write_failure(wrapped, "m.keras"))
    assert io.write_failure(FileNotFoundError(errno.ENOENT, "gone"), "x") is None
    with pytest.raises(FileNotFoundError):  # a missing input is not an output problem
        with io.refused_writes("x"):
            open(tmp_path / "missing.txt")


def test_remove_partials_removes_what_killed_writes_left_and_only_that(tmp_path):
    (tmp_path / f".model.keras{io.PARTIAL}abc.keras").write_text("half")
    (tmp_path / f".epoch-0003{io.PARTIAL}xyz").mkdir()
    (tmp_path / f".other{io.PARTIAL}1.npy").write_text("another prefix")
    (tmp_path / "model.keras").write_text("whole")
    assert io.remove_partials(tmp_path, prefix="model") == 1
    assert io.remove_partials(tmp_path, prefix="epoch") == 1
    assert listing(tmp_path) == [f".other{io.PARTIAL}1.npy", "model.keras"]
