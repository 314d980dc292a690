"""FairSlots: a per-owner share of the slots, waiters served in arrival order, leavers leave."""

from __future__ import annotations

import asyncio

import pytest

from mailroom.fair_slots import FairSlots


async def started(slots: FairSlots, owner: str, served: list[str]) -> asyncio.Task[None]:
    """A task waiting for a slot for ``owner`` (recorded in ``served`` once it has one)."""

    async def wait() -> None:
        await slots.acquire(owner)
        served.append(owner)

    task = asyncio.ensure_future(wait())
    await asyncio.sleep(0)  # it is in the queue (or served) now
    return task


def test_one_owner_holds_at_most_its_share_and_others_go_ahead() -> None:
    async def main() -> None:
        slots = FairSlots(total=4, per_owner=2)
        assert slots.try_acquire("A")
        assert slots.try_acquire("A")
        assert not slots.try_acquire("A")  # at its share, with two slots free
        served: list[str] = []
        third = await started(slots, "A", served)
        assert slots.try_acquire("B")
        assert served == []
        assert slots.waiting == 1
        slots.release("A")
        await third
        assert served == ["A"]
        assert (slots.borrowed, slots.held_by("A"), slots.held_by("B")) == (3, 2, 1)

    asyncio.run(main())


def test_waiters_are_served_in_arrival_order_and_newcomers_do_not_pass_them() -> None:
    async def main() -> None:
        slots = FairSlots(total=1, per_owner=1)
        assert slots.try_acquire("HOLDER")
        served: list[str] = []
        tasks = [await started(slots, owner, served) for owner in ("B", "C", "D")]
        for _ in range(3):
            # newcomers arrive while every slot is taken: none of them is served first
            assert not slots.try_acquire("NEW")
            current = ["HOLDER", *served][-1]
            slots.release(current)
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        assert served == ["B", "C", "D"]
        assert slots.held_by("NEW") == 0

    asyncio.run(main())


def test_an_owner_at_its_share_holds_up_nobody_behind_it() -> None:
    async def main() -> None:
        slots = FairSlots(total=3, per_owner=1)
        assert slots.try_acquire("A")
        assert slots.try_acquire("B")
        assert slots.try_acquire("C")
        served: list[str] = []
        waiting_a = await started(slots, "A", served)  # first in line, but A is at its share
        waiting_d = await started(slots, "D", served)
        slots.release("B")  # free to D, not to A
        await waiting_d
        assert served == ["D"]
        slots.release("A")
        await waiting_a
        assert served == ["D", "A"]

    asyncio.run(main())


def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    async def main() -> None:
        slots = FairSlots(total=1, per_owner=1)
        assert slots.try_acquire("A")
        served: list[str] = []
        leaver = await started(slots, "B", served)
        stayer = await started(slots, "C", served)
        leaver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaver
        assert slots.waiting == 1
        slots.release("A")
        await stayer
        assert served == ["C"]
        slots.release("C")
        assert (slots.borrowed, slots.waiting) == (0, 0)

    asyncio.run(main())


def test_a_waiter_cancelled_as_it_is_served_hands_the_slot_on() -> None:
    async def main() -> None:
        slots = FairSlots(total=1, per_owner=1)
        assert slots.try_acquire("A")
        served: list[str] = []
        leaver = await started(slots, "B", served)
        stayer = await started(slots, "C", served)
        slots.release("A")  # B is given the slot, but has not run yet...
        leaver.cancel()  # ...and is cancelled before it does
        with pytest.raises(asyncio.CancelledError):
            await leaver
        await stayer
        assert served == ["C"]
        assert (slots.borrowed, slots.held_by("B"), slots.held_by("C")) == (1, 0, 1)

    asyncio.run(main())


def test_releasing_a_slot_not_held_is_an_error() -> None:
    slots = FairSlots(total=2, per_owner=1)
    with pytest.raises(RuntimeError):
        slots.release("A")


def test_the_share_is_never_more_than_the_total() -> None:
    assert FairSlots(total=2, per_owner=5).per_owner == 2
    with pytest.raises(ValueError, match="at least 1"):
        FairSlots(total=0, per_owner=1)
