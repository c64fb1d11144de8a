"""The live event stream (Server-Sent Events): log entries, status changes, progress."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from activeupgrade.api.server import daemon_of, int_param
from activeupgrade.bus import Event, EventKind

KEEPALIVE = 15.0


async def events(request: Request) -> StreamingResponse:
    """Server-Sent Events: ``event: log|status|progress`` with JSON ``data``.

    Query ``after=ID`` first replays the log entries after that id.
    """
    d = daemon_of(request)
    # Checked before the stream starts: a bad value is a 400, not a broken stream.
    after = int_param(request, "after", -1, low=0) if request.query_params.get(
        "after") else -1
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=10_000)

    def listener(event: Event) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    unsubscribe = d.bus.subscribe(listener)

    async def stream() -> AsyncIterator[str]:
        try:
            status = await asyncio.to_thread(d.engine.status_view)
            yield f"event: status\ndata: {json.dumps(status)}\n\n"
            if after >= 0:
                for e in await asyncio.to_thread(d.log.entries, after=after):
                    yield f"event: log\ndata: {json.dumps(e.to_dict())}\n\n"
            while True:
                try:
                    ev = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                data = ev.data
                if ev.kind is EventKind.STATUS:
                    data = await asyncio.to_thread(d.engine.status_view)
                yield f"id: {ev.seq}\nevent: {ev.kind}\ndata: {json.dumps(data)}\n\n"
        finally:
            unsubscribe()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})


routes = [Route("/events", events, methods=["GET"])]
