"""The raw landing store on its own: written once, read-only, never overwritten."""

from __future__ import annotations

import stat

from carewatch import rawstore


def test_a_stored_file_is_read_only(tmp_path):
    path = rawstore.put("dtoc_la", "2017-02", b"one,two\n", "csv", root=tmp_path)
    digest = rawstore.sha256_of(b"one,two\n")
    assert path == tmp_path / "dtoc_la" / "2017-02" / f"{digest}.csv"
    assert path.read_bytes() == b"one,two\n"
    assert path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0


def test_storing_the_same_content_again_leaves_the_file_alone(tmp_path):
    first = rawstore.put("dtoc_la", "2017-02", b"one,two\n", "csv", root=tmp_path)
    before = first.stat()
    again = rawstore.put("dtoc_la", "2017-02", b"one,two\n", "csv", root=tmp_path)
    after = again.stat()
    assert again == first
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not written again
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary file left behind


def test_a_write_that_fails_leaves_no_temporary_file(tmp_path, monkeypatch):
    import os

    import pytest

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        rawstore.put("dtoc_la", "2017-02", b"one,two\n", "csv", root=tmp_path)
    assert list((tmp_path / "dtoc_la" / "2017-02").iterdir()) == []
