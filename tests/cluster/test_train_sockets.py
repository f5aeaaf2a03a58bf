"""`aec train` on the embedded default listens on loopback only (issue 27 item 8): Ray Train's
torch process group (its TCP store and gloo's pairs) binds 127.0.0.1, never ``*:port``.

The session's training run (the ``trained`` fixture: 2 Ray Train workers) is watched while it
trains — every socket any process on the machine listened on meanwhile — so the check costs no
training of its own."""

from __future__ import annotations

from tests.sockets import is_loopback


def test_training_listens_on_loopback_only(trained):
    assert "registered photos@1" in trained["output"], "the training job failed"
    new = trained["listened"]
    assert new, "no process listened during training: nothing was checked"
    assert all(is_loopback(a) for a, _ in new), sorted(new)
