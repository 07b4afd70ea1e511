"""The node's fair lock: reentrant, exclusive, and a waiter is not starved by a thread that
takes it again and again."""

import threading
import time

import pytest

from coordinator.locks import FairRLock


def test_reentrant_and_exclusive():
    lock = FairRLock()
    inside = []

    def worker(n):
        for _ in range(200):
            with lock, lock:  # reentrant
                inside.append(n)
                assert inside.count(n) == 1
                inside.remove(n)
                assert not inside

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with pytest.raises(RuntimeError):
        lock.release()


def test_a_waiter_gets_in_while_another_thread_hammers_it():
    lock = FairRLock()
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            with lock:
                time.sleep(0.0005)

    thread = threading.Thread(target=hammer)
    thread.start()
    time.sleep(0.05)
    waits = []
    for _ in range(20):
        started = time.perf_counter()
        with lock:
            waits.append(time.perf_counter() - started)
    stop.set()
    thread.join()
    assert max(waits) < 0.1  # served in turn, not after the hammering ends
