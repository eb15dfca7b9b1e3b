"""Doorbell: lifecycle, ring/sleep semantics, no lost wake-up across processes, asyncio use."""

from __future__ import annotations

import asyncio
import multiprocessing.context
import select
from collections.abc import Callable
from pathlib import Path

import pytest

from titan.shm.doorbell import Doorbell, fifo_path, unlink_doorbell_quietly, wait_any, wait_any_async
from titan.shm.ring import Ring
from titan.shm.segment import Segment, exists

from . import workers

Names = Callable[[str], str]


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_create_attach_unlink_leaves_nothing(shm_name: Names) -> None:
    name = shm_name("bell")
    bell = Doorbell.create(name)
    with pytest.raises(FileExistsError):
        Doorbell.create(name)
    other = Doorbell.attach(name)
    other.close()
    bell.close()
    assert exists(name) and fifo_path(name).exists()
    with Doorbell.attach(name) as again:
        again.unlink()
    assert not exists(name)
    assert not fifo_path(name).exists()
    with pytest.raises(FileNotFoundError):
        Doorbell.attach(name)
    assert unlink_doorbell_quietly(name) is False


def test_fifo_directory_follows_the_environment(
    shm_name: Names, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TITAN_SHM_DIR", str(tmp_path))
    name = shm_name("bell")
    with Doorbell.create(name) as bell:
        assert (tmp_path / f"{name}.fifo").exists()
        bell.unlink()
    assert list(tmp_path.iterdir()) == []


def test_ring_wakes_only_a_consumer_that_said_it_sleeps(shm_name: Names) -> None:
    name = shm_name("bell")
    with Doorbell.create(name) as consumer, Doorbell.attach(name) as producer:
        producer.ring()
        assert not readable(consumer.fileno())
        assert consumer.sleep(0.001) is False

        consumer.prepare_sleep()
        assert consumer.is_sleeping()
        producer.ring()
        assert not consumer.is_sleeping()  # the ringer clears it: a burst costs one write
        producer.ring()
        assert readable(consumer.fileno())
        assert consumer.sleep(5.0) is True
        assert not readable(consumer.fileno())  # sleep() drained
        consumer.cancel_sleep()
        assert consumer.stats() == {"sleeps": 2, "wakes": 1, "timeouts": 1}
        consumer.unlink()


def test_wait_any_returns_at_once_when_data_is_waiting_and_false_on_timeout(shm_name: Names) -> None:
    with Doorbell.create(shm_name("bell")) as bell, Ring.create(shm_name("ring"), 4, 32) as ring:
        assert wait_any([ring], bell, timeout=0.005) is False
        assert not bell.is_sleeping()
        ring.try_push(b"x")
        assert wait_any([ring], bell, timeout=60.0) is True
        assert bell.stats()["timeouts"] == 1
        bell.unlink()
        ring.unlink()


@pytest.mark.parametrize("count", [8000])
def test_ping_pong_across_processes_never_loses_a_wake_up(
    shm_name: Names, spawn: multiprocessing.context.SpawnContext, count: int
) -> None:
    """Every message needs a wake-up on both sides (spin 0); a lost one would show as a 2 s timeout."""
    names = {k: shm_name(k) for k in ("ping", "pong", "bell_parent", "bell_child", "result")}
    ping = Ring.create(names["ping"], 64, 64)
    pong = Ring.create(names["pong"], 64, 64)
    bell = Doorbell.create(names["bell_parent"])
    child_bell = Doorbell.create(names["bell_child"])
    result = Segment.create(names["result"], 64)
    echo = spawn.Process(
        target=workers.echo_with_doorbell,
        args=(
            names["ping"],
            names["pong"],
            names["bell_child"],
            names["bell_parent"],
            count,
            names["result"],
        ),
    )
    echo.start()
    try:
        timeouts = 0
        for seq in range(count):
            ping.push(seq.to_bytes(8, "little"), timeout=10.0)
            child_bell.ring()
            while not wait_any([pong], bell, timeout=2.0, spin_s=0.0):
                timeouts += 1
                assert timeouts < 5, "echo process stopped answering"
            assert pong.try_pop() == seq.to_bytes(8, "little")
        echo.join(timeout=30)
        assert echo.exitcode == 0
        echoed, child_timeouts = result.buf.cast("q")[:2].tolist()
        assert (echoed, child_timeouts, timeouts) == (count, 0, 0)
        assert bell.stats()["wakes"] > 0
    finally:
        for closeable in (ping, pong, bell, child_bell, result):
            closeable.close()


def test_two_producers_racing_one_sleeping_consumer(
    shm_name: Names, spawn: multiprocessing.context.SpawnContext
) -> None:
    per_producer = 4000
    bell = Doorbell.create(shm_name("bell"))
    rings = [Ring.create(shm_name(f"ring{i}"), 16, 64) for i in range(2)]
    producers = [
        spawn.Process(target=workers.paced_producer, args=(ring.name, bell.name, per_producer, seed))
        for seed, ring in enumerate(rings)
    ]
    for producer in producers:
        producer.start()
    try:
        received = [0, 0]
        timeouts = 0
        while received != [per_producer, per_producer]:
            if not wait_any(rings, bell, timeout=2.0, spin_s=0.0):
                timeouts += 1
                assert timeouts < 5, f"producers stalled at {received}"
                continue
            for i, ring in enumerate(rings):
                while (message := ring.try_pop()) is not None:
                    assert message == workers.tagged_payload(received[i])
                    received[i] += 1
        for producer in producers:
            producer.join(timeout=30)
            assert producer.exitcode == 0
        assert timeouts == 0
        assert bell.stats()["wakes"] > 0  # the consumer really slept and was woken
    finally:
        bell.close()
        for ring in rings:
            ring.close()


def test_asyncio_consumer_wakes_on_the_fileno(
    shm_name: Names, spawn: multiprocessing.context.SpawnContext
) -> None:
    count = 2000
    bell = Doorbell.create(shm_name("bell"))
    ring = Ring.create(shm_name("ring"), 16, 64)
    producer = spawn.Process(target=workers.paced_producer, args=(ring.name, bell.name, count, 7))

    async def consume() -> tuple[int, int]:
        received = timeouts = 0
        while received < count:
            if not await wait_any_async([ring], bell, timeout=2.0):
                timeouts += 1
                assert timeouts < 5, f"producer stalled at {received}"
                continue
            while (message := ring.try_pop()) is not None:
                assert message == workers.tagged_payload(received)
                received += 1
        return received, timeouts

    producer.start()
    try:
        assert asyncio.run(asyncio.wait_for(consume(), timeout=60)) == (count, 0)
        producer.join(timeout=30)
        assert producer.exitcode == 0
    finally:
        bell.close()
        ring.close()


def test_add_reader_fires_after_a_ring(shm_name: Names) -> None:
    """The raw recipe for asyncio processes: add_reader on fileno(), drain() in the callback."""
    name = shm_name("bell")
    with Doorbell.create(name) as consumer, Doorbell.attach(name) as producer:

        async def scenario() -> int:
            loop = asyncio.get_running_loop()
            fired = asyncio.Event()

            def on_ring() -> None:
                consumer.drain()
                fired.set()

            loop.add_reader(consumer.fileno(), on_ring)
            try:
                consumer.prepare_sleep()
                loop.call_soon(producer.ring)
                await asyncio.wait_for(fired.wait(), timeout=10)
            finally:
                loop.remove_reader(consumer.fileno())
            return len(select.select([consumer.fileno()], [], [], 0)[0])

        assert asyncio.run(scenario()) == 0
        consumer.unlink()
