"""
Which GenAI semantic conventions lc_trace follows, chosen once per handler.

``v1.41.0`` of the core conventions is the default, so no dashboard built on what lc_trace
emitted before breaks. ``v0.1.0`` of the standalone GenAI conventions
(``open-telemetry/semantic-conventions-genai``) is chosen by the handler's ``genai_conventions``
argument or by ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``, the transition
switch OpenTelemetry instrumentations share. docs/conventions.md lists what differs.
"""

from __future__ import annotations

from typing import Final, Literal

from lc_trace._env import OTEL_SEMCONV_STABILITY_OPT_IN, opt_in_values

__all__ = ["LATEST", "OPT_IN", "V1_41", "Conventions", "choose"]

Conventions = Literal["v1.41.0", "v0.1.0"]
V1_41: Final = "v1.41.0"
LATEST: Final = "v0.1.0"
OPT_IN = "gen_ai_latest_experimental"
_CHOICES: tuple[Conventions, ...] = (V1_41, LATEST)


def choose(argument: str | None) -> Conventions:
    """
    The version a handler follows: its argument, else the opt-in variable, else v1.41.0.
    """
    if argument is None:
        return LATEST if OPT_IN in opt_in_values() else V1_41
    for choice in _CHOICES:
        if argument == choice:
            return choice
    raise ValueError(
        f"genai_conventions must be {V1_41!r} (the default) or {LATEST!r}, got {argument!r}; "
        f"{OTEL_SEMCONV_STABILITY_OPT_IN}={OPT_IN} chooses {LATEST!r} too"
    )
