"""augkit.core.interrupts: a Ctrl-C inside ``deferred`` is noted, then handled on the way out."""

from __future__ import annotations

import signal
import threading

import pytest

from augkit.core.interrupts import deferred


def test_a_ctrl_c_inside_is_noted_and_raised_on_the_way_out(python_ctrl_c):
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferred() as ctrl_c:
            signal.raise_signal(signal.SIGINT)  # to this thread; its handler runs before this returns
            reached.append(len(ctrl_c))
    assert reached == [1]  # the block ran to its end, knowing of the Ctrl-C
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_a_ctrl_c_nothing_changes(python_ctrl_c):
    with deferred() as ctrl_c:
        pass
    assert ctrl_c == [] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_program_that_ignores_ctrl_c_still_ignores_it():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred() as ctrl_c:
            signal.raise_signal(signal.SIGINT)
        assert ctrl_c and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_the_handler_is_left_alone(python_ctrl_c):
    seen = []

    def inside():
        with deferred() as ctrl_c:
            seen.append((ctrl_c, signal.getsignal(signal.SIGINT)))

    thread = threading.Thread(target=inside)
    thread.start()
    thread.join()
    assert seen == [([], signal.default_int_handler)]
