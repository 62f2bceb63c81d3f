"""``nas._io``: atomic writes never leave half a file or a temporary behind."""

from __future__ import annotations

import pytest

from nas._io import write_atomic, write_text_atomic
from nas.errors import NasError


def test_write_text_atomic_creates_the_folder_and_replaces_the_file(tmp_path):
    p = tmp_path / "a" / "b.txt"
    write_text_atomic(p, "one ü\n", "hint")
    write_text_atomic(p, "two\n", "hint")
    assert p.read_text(encoding="utf-8") == "two\n"
    assert [q.name for q in p.parent.iterdir()] == ["b.txt"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "t.bin"
    p.write_bytes(b"old")

    def half(fh):
        fh.write(b"ne")
        raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError, match="killed midway"):
        write_atomic(p, half)
    assert p.read_bytes() == b"old" and [q.name for q in tmp_path.iterdir()] == ["t.bin"]


def test_permission_errors_become_one_line_with_a_hint(tmp_path):
    def denied(fh):
        raise PermissionError(13, "Permission denied")

    with pytest.raises(
        NasError, match=r"cannot write .*x.txt \(Permission denied\); give --out a writable folder$"
    ) as exc:
        write_atomic(tmp_path / "x.txt", denied, "give --out a writable folder")
    assert "\n" not in str(exc.value)
    with pytest.raises(PermissionError):  # no hint: the caller handles it (an optional cache)
        write_atomic(tmp_path / "x.txt", denied)
    assert not any(tmp_path.iterdir())
