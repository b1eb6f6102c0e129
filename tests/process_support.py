"""Starting a process that a test interrupts with SIGINT (Ctrl-C), whatever started the test run."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` for such a process: SIGINT back to its default in the child.

    A shell without job control (a script's ``cmd &``, ``nohup``, many CI runners) starts
    background commands with SIGINT ignored, and every child inherits that; Python then
    installs no KeyboardInterrupt handler, so a ``course grade`` started by the test would
    not hear the test's Ctrl-C at all.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
