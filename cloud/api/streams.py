"""What the API's Server-Sent Event streams share: how often they look for news, and the frame."""

from __future__ import annotations

from pydantic import BaseModel

# How often a stream looks for news; the estimator updates every 0.1 s by default.
STREAM_POLL_S = 0.1


def sse(data: BaseModel, event: str | None = None) -> str:
    """One Server-Sent Events message carrying `data` as JSON, of type `event` if given."""
    kind = f"event: {event}\n" if event else ""
    return f"{kind}data: {data.model_dump_json()}\n\n"
