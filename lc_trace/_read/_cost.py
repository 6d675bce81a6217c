"""
What the model calls of a log cost, priced when the log is read, from the price table of the
``genai-prices`` package (pydantic's, on PyPI): never on the hot path, and never written into the
log, so a newer genai-prices reprices an old log.

A call is priced from its end line's tokens, its provider (``gen_ai.provider.name``) and its
model (``gen_ai.response.model``, else ``gen_ai.request.model``), at the prices in effect at the
call's start. lc_trace's counts and genai-prices' mean the same thing: input tokens are all of
the prompt, and the cache-read and cache-write tokens are parts of them; output tokens include
the reasoning tokens. genai-prices charges each part at its own rate where the table has one
(cache reads, cache writes, reasoning), and at the plain input or output rate where it has not.

A call that cannot be priced is counted, with why: no usage recorded, failed before any usage,
never ended, no model name, a model (or provider) the table does not know, or counts the table
refuses (more cache-read tokens than input tokens). Loading the table takes ~150 ms and ~22 MB
(pydantic, the table), so it is imported on the first call priced, not with the command.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from lc_trace._read._runs import ModelCall

if TYPE_CHECKING:
    from genai_prices.types import PriceCalculation

__all__ = [
    "COST_HEADER",
    "CURRENCY",
    "REASONS",
    "CallPrice",
    "Cost",
    "Pricer",
    "TraceCosts",
    "cost_cell",
    "cost_notes",
    "price_source",
]

CURRENCY = "USD"  # genai-prices' one currency
PRICE_PACKAGE = "genai-prices"

# Why a call has no price: the key (``--json``'s) and what the table says.
NO_USAGE = "no_usage"
FAILED_NO_USAGE = "failed_no_usage"
NEVER_ENDED = "never_ended"
NO_MODEL = "no_model"
UNKNOWN_MODEL = "unknown_model"
INVALID_USAGE = "invalid_usage"
REASONS = {
    UNKNOWN_MODEL: f"model or provider not in {PRICE_PACKAGE}' table",
    NO_USAGE: "no token usage recorded",
    FAILED_NO_USAGE: "failed, no token usage recorded",
    NEVER_ENDED: "never ended (no end line read)",
    NO_MODEL: "no model name recorded",
    INVALID_USAGE: f"token counts {PRICE_PACKAGE} refuses",
}

COST_HEADER = f"  {'COST ' + CURRENCY:>12} "  # a column of usage's tables: amounts, then a mark


@dataclass(frozen=True, slots=True)
class CallPrice:
    """
    One call's price, or why it has none; *ref* names the model as ``provider/model``.
    """

    amount: Decimal | None
    reason: str | None
    ref: str


@dataclass(slots=True)
class Cost:
    """
    The priced calls' sum, and the calls not priced by reason and model.
    """

    amount: Decimal = Decimal(0)
    priced: int = 0
    unpriced: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, price: CallPrice) -> None:
        """
        Count one call's price.
        """
        if price.amount is not None:
            self.amount += price.amount
            self.priced += 1
        else:
            assert price.reason is not None
            self.unpriced[price.reason, price.ref] += 1

    @property
    def unpriced_calls(self) -> int:
        """
        Calls with no price, whatever the reason.
        """
        return sum(self.unpriced.values())

    def as_dict(self) -> dict[str, Any]:
        """
        The figures as JSON-ready data (the amount as a float: exact to ~15 significant digits).
        """
        return {
            "amount": float(self.amount),
            "currency": CURRENCY,
            "priced_calls": self.priced,
            "unpriced_calls": self.unpriced_calls,
        }

    def unpriced_by_reason(self) -> dict[str, dict[str, int]]:
        """
        The calls not priced: reason → ``provider/model`` → calls.
        """
        out: dict[str, dict[str, int]] = {}
        for (reason, ref), calls in sorted(self.unpriced.items()):
            out.setdefault(reason, {})[ref] = calls
        return out


class Pricer:
    """
    Prices model calls with genai-prices' table (loaded on the first call priced), and remembers
    the models it does not know, so a log of many calls to one of them asks the table once.
    """

    def __init__(self) -> None:
        self._unknown: set[tuple[str | None, str]] = set()

    def price(self, call: ModelCall) -> CallPrice:
        """
        The price of *call*, or why it has none.
        """
        ref = f"{call.provider}/{call.model}" if call.provider else call.model
        if not call.usage_recorded:
            reason = FAILED_NO_USAGE if call.failed else NO_USAGE if call.ended else NEVER_ENDED
            return CallPrice(None, reason, ref)
        if call.model == "?":
            return CallPrice(None, NO_MODEL, ref)
        if (call.provider, call.model) in self._unknown:
            return CallPrice(None, UNKNOWN_MODEL, ref)
        try:
            found = _calc(call)
        except LookupError:  # genai-prices: no such provider, or no such model at it
            self._unknown.add((call.provider, call.model))
            return CallPrice(None, UNKNOWN_MODEL, ref)
        except ValueError:  # genai-prices: counts that cannot be (a part larger than its whole)
            return CallPrice(None, INVALID_USAGE, ref)
        return CallPrice(found.total_price, None, ref)


def _calc(call: ModelCall) -> PriceCalculation:
    """
    genai-prices' price of one call. Its ``Usage`` means what lc_trace's counts mean: input
    tokens are the whole prompt with the cache reads and writes in it, output tokens include the
    reasoning. Without a provider, genai-prices finds one from the model's name; with one it does
    not know (``ollama``, a fake model's), it raises LookupError rather than guess.
    """
    from genai_prices import Usage, calc_price

    tokens_in, tokens_out, cache_read, cache_write, reasoning = call.tokens
    usage = Usage(
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_reasoning_tokens=reasoning,
    )
    when = datetime.fromtimestamp(call.start_ns / 1e9, tz=UTC)
    return calc_price(usage, call.model, provider_id=call.provider, genai_request_timestamp=when)


def price_source() -> dict[str, str]:
    """
    Where the prices come from: the package, its version (its table is the one bundled with
    that release), the currency, and when the prices apply.
    """
    from genai_prices import __version__

    return {
        "package": PRICE_PACKAGE,
        "version": __version__,
        "currency": CURRENCY,
        "prices_at": "each call's start time",
    }


class _Summary(Protocol):
    @property
    def trace_id(self) -> str: ...


class TraceCosts(dict[str, Cost]):
    """
    Each trace's cost by trace id, filled one model call at a time as the log is read
    (``summarise``'s *on_call*): a few numbers per trace, no call kept.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pricer = Pricer()

    def __call__(self, trace: _Summary, call: ModelCall) -> None:
        cost = self.get(trace.trace_id)
        if cost is None:
            cost = self[trace.trace_id] = Cost()
        cost.add(self.pricer.price(call))


def cost_cell(cost: Cost) -> str:
    """
    A table cell: the amount to the millionth of a dollar (``-`` when no call was priced),
    ``*`` when some of the group's calls were not priced.
    """
    amount = f"{cost.amount:.6f}" if cost.priced else "-"
    return f"  {amount:>12}{'*' if cost.unpriced else ' '}"


def cost_notes(total: Cost) -> Iterator[str]:
    """
    The lines under the tables: where the prices come from, and the calls not priced, by reason.
    """
    source = price_source()
    yield ""
    yield (
        f"cost: {total.amount:.6f} {CURRENCY} for {total.priced} priced calls, at {source['package']} "
        f"{source['version']}'s prices in effect at each call's start (repriced at every read)"
    )
    if not total.unpriced:
        return
    yield f"* not priced: {total.unpriced_calls} calls"
    for reason, refs in total.unpriced_by_reason().items():
        for ref, calls in refs.items():
            yield f"  {calls:>6}  {REASONS[reason]}: {ref}"
