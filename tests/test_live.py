"""The live-push adapter's contract (polystack.live), against the real Redis: what is published
to a user after one of their sockets joined reaches each of that user's sockets in this process,
in publish order, once; nothing reaches a socket that left or another user's; a message that is
not ours is skipped; a broken stream is reported to every socket."""
import asyncio
import time

import pytest
import redis

from polystack import live
from tests.faults import CuttableProxy
from tests.helpers import free_port, unique


class Socket:
    def __init__(self):
        self.messages: list[dict] = []
        self.broke = 0

    async def live_message(self, message: dict) -> None:
        self.messages.append(message)

    async def stream_broke(self) -> None:
        self.broke += 1


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)  # the poll interval of this deadline wait


@pytest.fixture
def prefix(settings):
    settings.KAFKA_TOPIC_PREFIX = unique("live") + "."  # channels of this test's own
    return settings.KAFKA_TOPIC_PREFIX


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_a_users_messages_reach_each_of_their_sockets_in_order_once(prefix):
    async def scenario():
        hub = live.Hub()
        tab, phone, other = Socket(), Socket(), Socket()
        await hub.join(1, tab)
        await hub.join(1, phone)
        await hub.join(2, other)
        sent = [(1, {"type": "t", "n": n}) for n in range(500)]
        sent.insert(250, (2, {"type": "t", "n": "theirs"}))
        assert await asyncio.to_thread(live.publish, sent) == 501
        # A last message to each user, published after the rest: delivery is in publish order,
        # so once it arrived, whatever was coming before it has come.
        await asyncio.to_thread(live.publish, [(1, {"type": "end"}), (2, {"type": "end"})])
        await until(lambda: all(s.messages and s.messages[-1] == {"type": "end"} for s in (tab, phone, other)))
        assert [m.get("n") for m in tab.messages] == [*range(500), None] == [m.get("n") for m in phone.messages]
        assert other.messages == [{"type": "t", "n": "theirs"}, {"type": "end"}]
        assert hub.subscribed_users == 2

    run(scenario())


def test_nothing_reaches_a_socket_that_left(prefix):
    async def scenario():
        hub = live.Hub()
        staying, leaving, witness = Socket(), Socket(), Socket()
        await hub.join(8, witness)  # another user's socket on the same hub: the barrier below
        await hub.join(7, staying)
        await hub.join(7, leaving)
        await hub.leave(7, leaving)
        await asyncio.to_thread(live.publish, [(7, {"type": "t", "n": 1})])
        await until(lambda: staying.messages)
        await hub.leave(7, staying)
        assert hub.subscribed_users == 1
        # Published after the message for 7, on one connection, read on one: once the witness
        # has its message, a message for 7 would have been handed out before it.
        await asyncio.to_thread(live.publish, [(7, {"type": "t", "n": 2}), (8, {"type": "end"})])
        await until(lambda: witness.messages)
        assert leaving.messages == [] and staying.messages == [{"type": "t", "n": 1}]

    run(scenario())


def test_a_message_that_is_not_ours_is_skipped(prefix, settings):
    async def scenario():
        hub = live.Hub()
        socket = Socket()
        await hub.join(3, socket)
        forger = redis.Redis.from_url(settings.REDIS_URL)
        for junk in (b"not json", b"[1, 2]", b"\xff\xfe", b'"text"'):
            forger.publish(live.user_channel(3), junk)
        await asyncio.to_thread(live.publish, [(3, {"type": "t", "n": "after"})])
        await until(lambda: socket.messages)
        assert socket.messages == [{"type": "t", "n": "after"}]

    run(scenario())


def test_a_broken_stream_is_reported_and_the_hub_starts_afresh(prefix, settings):
    # The hub reaches Redis through a proxy of its own, which the test cuts as a Redis restart
    # would. (Killing every pub/sub client of the shared Redis broke the live stream of other
    # tests' web roles running meanwhile: their sockets closed with 4503.)
    redis_port = int(settings.REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    proxy = CuttableProxy(listen_port=free_port(), target_port=redis_port).start()

    async def scenario():
        hub = live.Hub(url=f"redis://127.0.0.1:{proxy.address[1]}/0")
        first, second = Socket(), Socket()
        await hub.join(4, first)
        await hub.join(5, second)
        proxy.cut()  # pushes in between are lost
        await until(lambda: first.broke and second.broke)
        assert hub.subscribed_users == 0, "a broken stream forgets its subscriptions: the sockets come back"
        proxy.restore()
        again = Socket()
        await hub.join(4, again)
        await asyncio.to_thread(live.publish, [(4, {"type": "t", "n": "back"})])
        await until(lambda: again.messages)

    try:
        run(scenario())
    finally:
        proxy.stop()
