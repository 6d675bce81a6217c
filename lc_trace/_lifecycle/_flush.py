"""
Flushing an OpenTelemetry provider the handler was given, or the global one, without raising.
"""

from __future__ import annotations

__all__ = ["flush_provider"]


def flush_provider(provider: object, timeout_millis: int) -> bool:
    """
    ``provider.force_flush(timeout_millis)`` where the provider has one (SDK providers do, the
    API's no-op and proxy providers do not); False on timeout or failure, never an exception.
    """
    flush = getattr(provider, "force_flush", None)
    if flush is None:
        return True
    try:
        return bool(flush(timeout_millis))
    except Exception:
        return False
