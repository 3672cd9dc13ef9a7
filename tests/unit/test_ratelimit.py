"""The admission window: bounded holders, first come first served, resizable."""

from __future__ import annotations

import asyncio

import pytest

from scanner.ratelimit import Window


def test_holders_are_bounded_and_admitted_in_order() -> None:
    async def main() -> None:
        window = Window(2)
        order: list[int] = []

        async def hold(i: int, release: asyncio.Event) -> None:
            await window.acquire()
            order.append(i)
            await release.wait()
            window.release()

        gates = [asyncio.Event() for _ in range(5)]
        tasks = [asyncio.create_task(hold(i, gates[i])) for i in range(5)]
        await asyncio.sleep(0)
        assert (order, window.used, window.waiting) == ([0, 1], 2, 3)
        gates[1].set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert order == [0, 1, 2]
        window.resize(4)  # two more at once, in arrival order
        await asyncio.sleep(0)
        assert order == [0, 1, 2, 3, 4]
        assert window.used == 4
        window.resize(1)  # holders keep their places; nobody new until below one
        for gate in gates:
            gate.set()
        await asyncio.gather(*tasks)
        assert (window.used, window.waiting, window.size) == (0, 0, 1)

    asyncio.run(main())


def test_a_waiter_that_leaves_gives_its_place_on() -> None:
    async def main() -> None:
        window = Window(1)
        await window.acquire()
        leaving = asyncio.create_task(window.acquire())
        staying = asyncio.create_task(window.acquire())
        await asyncio.sleep(0)
        leaving.cancel()
        window.release()  # hands the place to the first waiter still there
        await staying
        assert window.used == 1
        with pytest.raises(asyncio.CancelledError):
            await leaving
        window.release()
        assert window.used == 0

    asyncio.run(main())


def test_a_window_holds_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Window(0)
    window = Window(3)
    window.resize(0)
    assert window.size == 1
