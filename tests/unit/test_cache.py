"""The cache's top is closed to everyone but root and a user namespace's root, and an open one that
an earlier version left is closed too."""

import os

import pytest

from bench.cache import CLOSED_MODE, USERNS_ID, closed, instance_dir

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown to the user namespace's group needs root")


@root_only
def test_a_cache_left_open_is_closed_and_a_new_one_is_made_closed(tmp_path):
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    for path in (closed(old), closed(tmp_path / "new" / "isobench")):
        st = path.stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (CLOSED_MODE, 0, USERNS_ID)


@root_only
def test_an_instance_dir_is_roots_alone_unless_a_user_namespace_must_pass(tmp_path):
    assert instance_dir(tmp_path / "a").stat().st_mode & 0o7777 == 0o700
    st = instance_dir(tmp_path / "b", userns=True).stat()
    assert (st.st_mode & 0o7777, st.st_gid) == (0o710, USERNS_ID)
