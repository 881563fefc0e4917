"""Database work of sockets, off Channels' one shared thread.

Channels' `database_sync_to_async` runs every call of a process on a single thread, so one slow
query (a client reconnecting in a loop with a long catch-up) queued every socket of that
process behind it. `off_thread` runs the call on the event loop's thread pool instead, each
call with a connection from the pool, given back when it returns.
"""
import functools

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connections


def off_thread(func):
    @functools.wraps(func)
    async def call(*args, **kwargs):
        def run():
            close_old_connections()
            try:
                return func(*args, **kwargs)
            finally:
                connections.close_all()  # back to the pool: a pool thread holds no connection

        return await sync_to_async(run, thread_sensitive=False)()

    return call
