"""serve's wake-ups to its delivery child over a socketpair: never blocking the committing
thread, never lost while the child reads, and gone quietly with the child."""

from __future__ import annotations

import asyncio
import socket
import threading

from phigate.mta.delivery.wake_link import WakeSender, listen_for_wakes


def test_a_child_that_does_not_read_never_blocks_the_sender() -> None:
    ours, theirs = socket.socketpair()
    sender = WakeSender()
    sender.attach(ours)
    # Far more wakes than the socket buffers hold (each byte takes a buffer of its own):
    # each one returns at once.
    for _ in range(20_000):
        sender.wake()
    pending = theirs.recv(1 << 20)
    assert set(pending) == {1}
    assert len(pending) < 20_000  # the buffer filled up: the rest were dropped, not waited on
    sender.attach(None)
    assert theirs.recv(16) == b""  # the parent's end is closed on detach
    sender.wake()  # no child now: nothing to do, no error
    theirs.close()


def test_wakes_from_threads_while_the_child_restarts_do_not_fail() -> None:
    sender = WakeSender()
    stop = threading.Event()
    errors: list[BaseException] = []

    def committer() -> None:
        try:
            while not stop.is_set():
                sender.wake()
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=committer) for _ in range(4)]
    for thread in threads:
        thread.start()
    peers = []
    for _ in range(200):  # restarted children: a new pair each time, the old one closed
        ours, theirs = socket.socketpair()
        peers.append(theirs)
        sender.attach(ours)
    peers[-1].close()  # the last child is gone too: sends fail inside, quietly
    stop.set()
    for thread in threads:
        thread.join()
    sender.attach(None)
    assert errors == []
    for peer in peers:
        peer.close()


def test_the_child_wakes_once_per_read_and_stops_when_the_parent_goes() -> None:
    async def scenario() -> tuple[int, int, bool]:
        ours, theirs = socket.socketpair()
        woken = asyncio.Event()
        count = 0

        def wake() -> None:
            nonlocal count
            count += 1
            woken.set()

        listen_for_wakes(theirs, wake)
        ours.sendall(b"\x01" * 50)  # fifty commits before the child's loop got to it
        await asyncio.wait_for(woken.wait(), 5)
        await asyncio.sleep(0.05)
        after_burst = count
        ours.close()  # the parent is gone
        for _ in range(100):
            await asyncio.sleep(0.01)
            if theirs.fileno() == -1:
                break
        return after_burst, count, theirs.fileno() == -1

    after_burst, total, closed = asyncio.run(scenario())
    assert after_burst == 1
    assert total == 1  # the end of the stream is no wake-up
    assert closed
