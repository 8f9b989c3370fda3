"""interrupts.py: SIGTERM raised as Terminated (a KeyboardInterrupt) while sigterm_raises runs, only then, once,
and the handler put back; real signals sent to this process."""
from __future__ import annotations

import importlib
import os
import signal
import threading

import pytest

from higherhrnet.interrupts import (Interrupted, Terminated, loader_worker_sigterm, same_stop, sigterm_raises,
                                    stop_signal, stopped)


def sigterm_to_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(autouse=True)
def default_sigterm():
    """Each test starts and must end with SIGTERM at its default action (as a new process has it)."""
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    yield
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_importing_the_package_installs_no_handler():
    for module in ("higherhrnet.cli", "higherhrnet.engine", "higherhrnet.predictor", "higherhrnet.video"):
        importlib.import_module(module)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_raises_terminated_a_keyboard_interrupt_and_the_default_comes_back():
    with pytest.raises(KeyboardInterrupt) as info:
        with sigterm_raises():
            sigterm_to_self()
            pytest.fail("SIGTERM did not raise")
    assert type(info.value) is Terminated and info.value.signal_number == signal.SIGTERM
    assert stop_signal(info.value) == signal.SIGTERM and stopped(info.value) == "terminated (SIGTERM)"


def test_a_second_sigterm_does_not_cut_the_clean_up_short():
    finished = []
    with sigterm_raises():
        try:
            sigterm_to_self()
            pytest.fail("SIGTERM did not raise")
        except Terminated:
            sigterm_to_self()               # while what was finished is saved: ignored
            finished.append("saved")
    assert finished == ["saved"]


@pytest.mark.parametrize("other", [signal.SIG_IGN, "handler"])
def test_a_handler_set_by_someone_else_is_left_alone(other):
    calls = []
    handler = (lambda number, frame: calls.append(number)) if other == "handler" else other
    signal.signal(signal.SIGTERM, handler)
    try:
        with sigterm_raises():
            sigterm_to_self()
            assert signal.getsignal(signal.SIGTERM) is handler
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert calls == ([signal.SIGTERM] if other == "handler" else [])


def test_nested_blocks_keep_the_outer_handler_until_the_outer_block_ends():
    with sigterm_raises():
        outer = signal.getsignal(signal.SIGTERM)
        with sigterm_raises():
            assert signal.getsignal(signal.SIGTERM) is outer
        assert signal.getsignal(signal.SIGTERM) is outer
        with pytest.raises(Terminated):
            sigterm_to_self()
            pytest.fail("SIGTERM did not raise")


def test_outside_the_main_thread_nothing_is_installed():
    seen = []

    def work():
        with sigterm_raises():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [signal.SIG_DFL]


def test_a_stop_restated_keeps_its_signal():
    assert type(same_stop(KeyboardInterrupt(), "m")) is Interrupted
    assert stop_signal(same_stop(KeyboardInterrupt(), "m")) == signal.SIGINT
    restated = same_stop(Terminated(), "terminated (SIGTERM) before training started")
    assert isinstance(restated, Terminated) and str(restated) == "terminated (SIGTERM) before training started"
    assert stopped(KeyboardInterrupt()) == "interrupted" and stopped(restated) == "terminated (SIGTERM)"


def test_a_loader_worker_gets_the_handler_back_only_where_its_main_process_had_it():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)            # a main process that does not raise on SIGTERM
    loader_worker_sigterm(0)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with sigterm_raises():
        inherited = signal.getsignal(signal.SIGTERM)
        loader_worker_sigterm(0)
        assert signal.getsignal(signal.SIGTERM) is not inherited     # a fresh one: the worker's own first SIGTERM
        with pytest.raises(Terminated):
            sigterm_to_self()
            pytest.fail("SIGTERM did not raise")
