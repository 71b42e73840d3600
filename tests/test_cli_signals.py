"""Ctrl-C and `kill` end a long command through its KeyboardInterrupt path, inherited or not."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from boxloop.cli.common import stop_signals_interrupt


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_raises_keyboard_interrupt_even_when_sigint_was_ignored(sig) -> None:
    # GIVEN a process that inherited SIGINT ignored (a background job of a script) and the
    # default SIGTERM, which would end it without a word
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        # WHEN the signal comes inside the block, THEN it is a KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt, match=sig.name), stop_signals_interrupt():
            os.kill(os.getpid(), sig)
            signal.sigtimedwait([], 0.1)  # let the handler run
            threading.Event().wait(1.0)
        # AND the inherited handlers are back after it
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_outside_the_main_thread_the_body_runs_as_it_is() -> None:
    ran = []

    def body() -> None:
        with stop_signals_interrupt():
            ran.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert ran == [signal.getsignal(signal.SIGTERM)]
