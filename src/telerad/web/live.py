"""Live pages: server-sent events that say *when* what a person looks at changed. Only a
digest crosses the stream (no patient data); the page then fetches the new fragment, which
is scoped and audited like any read. One loop for the worklist and the portal."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from telerad.auth.service import Actor
from telerad.errors import TeleradError
from telerad.httpauth import authenticate

#: How often the server looks whether a connected page's view changed.
POLL_SECONDS = 1.0
#: A comment line this often keeps proxies from closing a quiet stream.
HEARTBEAT_SECONDS = 15.0


def event_stream(request: Request, token: str, event: str,
                 state: Callable[[Actor], object]) -> StreamingResponse:
    """``event`` each time ``state`` (what the page shows, as JSON-able values, read for the
    session's actor) changes; ``signed_out`` when the session ends or the actor may no
    longer see it. Polling the stream is no sign of life: it does not keep an unattended
    screen's session open."""
    def fingerprint() -> str:
        actor = authenticate(request, token, activity=False)
        encoded = json.dumps(state(actor), default=str).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]

    async def stream() -> AsyncIterator[str]:
        last, quiet = "", 0.0
        yield "retry: 3000\n\n"
        while not await request.is_disconnected():
            try:
                current = await run_in_threadpool(fingerprint)
            except TeleradError:  # signed out, idle, or no longer allowed
                yield "event: signed_out\ndata: \n\n"
                return
            if current != last:
                if last:
                    yield f"event: {event}\ndata: {current}\n\n"
                last, quiet = current, 0.0
            elif quiet >= HEARTBEAT_SECONDS:
                yield ": still here\n\n"
                quiet = 0.0
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
