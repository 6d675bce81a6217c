"""
Turning whatever a chain carries into safe JSON text: serialise, redact, truncate.

Why our own walker rather than ``json.dumps(default=str)``: a generic ``default=str`` costs
~74 us per LangChain message (pydantic builds a repr), knowing messages costs 1-2 us
(docs/decisions.md); and the walker is where redaction by key happens and where one bad field
degrades alone instead of dropping the whole value. It never raises.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as _dt
import enum
import functools
import math
import re
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import orjson
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.prompt_values import ChatPromptValue, PromptValue
from pydantic import BaseModel, SecretBytes, SecretStr

__all__ = [
    "CONTAINER_COST",
    "REDACTED",
    "Serializer",
    "is_secret_key",
    "message_role",
    "redact_text",
]

REDACTED = "[REDACTED]"
DEFAULT_MAX_LENGTH = 8192
MIN_MAX_LENGTH = 16
_DEFAULT_MAX_ITEMS = 100
_MAX_DEPTH = 16
# Characters past the cut that are still scanned for secrets: longer than the shortest text
# every _SECRET_VALUE branch matches (AIza + 35 = 39), so a secret straddling the cut is found.
_SECRET_MARGIN = 256
# A walk stops adding items once its strings, keys and containers add up to max_length: the
# JSON text is cut there anyway, so a value of any size costs about what one of max_length does.
CONTAINER_COST = 8
"""
What one list or mapping takes from a walk's length budget besides its keys and strings
(brackets, quotes, separators); ``_messages`` counts its fast paths with it.
"""

_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "secret",
        "secrets",
        "authorization",
        "token",
        "apikey",
        "cookie",
        "credential",
        "credentials",
        "bearer",
        "jwt",
        "privatekey",
        "signature",
    }
)
_SECRET_PAIRS = frozenset({"apikey", "privatekey", "accesskey", "secretkey", "clientsecret"})
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")

# Shapes of credentials that show up in prompts, errors and metadata. Order matters little:
# the alternation is one pass of the C regex engine over the text.
_SECRET_VALUE = re.compile(
    r"(?:sk|pk|rk)-(?:[A-Za-z]+-)?[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic / Stripe keys
    r"|(?i:bearer|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*"  # Authorization header values
    r"|eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}"  # JWTs
    r"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub tokens
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API keys
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"  # Slack tokens
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face tokens
)


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """
    True for mapping keys that name a credential: ``api_key``, ``apiKey``, ``X-Auth-Token``,
    ``password``… but not ``max_tokens`` or ``input_tokens``.
    """
    parts = [p for p in _NON_ALNUM.split(_CAMEL.sub(r"\1_\2", key).lower()) if p]
    if any(p in _SECRET_WORDS for p in parts):
        return True
    return any(a + b in _SECRET_PAIRS for a, b in zip(parts, parts[1:], strict=False))


def redact_text(text: str) -> str:
    """
    Replace every credential-shaped substring of *text* with ``[REDACTED]``: what
    ``_SECRET_VALUE.sub`` gives, found from the literals every branch starts with.
    """
    if len(text) < 1024 and not _may_hold_secret(text):  # longer text nearly always holds some literal
        return text
    pieces = []
    done = 0
    match = _SECRET_VALUE.match
    for start in sorted(_match_starts(text)):
        if start < done:
            continue
        found = match(text, start)
        if found is not None:
            pieces.append(text[done:start])
            pieces.append(REDACTED)
            done = found.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _may_hold_secret(text: str) -> bool:
    """
    False only when *text* lacks a literal that every ``_SECRET_VALUE`` branch needs: ~0.4 us
    for a prompt, and most short text stops here.
    """
    if (
        "k-" in text  # sk- pk- rk-
        or "eyJ" in text
        or "AKIA" in text
        or "AIza" in text
        or "gh" in text  # ghp_ gho_ ghu_ ghs_ ghr_
        or "github_pat_" in text
        or "xox" in text
        or "hf_" in text
    ):
        return True
    folded = text.casefold()
    return "bearer" in folded or "basic" in folded


# Every _SECRET_VALUE branch starts with one of these literals (a key one character before its
# "k-"; the Authorization branch with bearer/basic in any case, found in the lowered text).
_ANCHORS = ("k-", "eyJ", "AKIA", "AIza", "github_pat_", "xox", "hf_")
_GITHUB = re.compile(r"gh[pousr]_")  # "gh" alone is in every other English sentence
_AUTH_BRANCH = re.compile(r"(?i:bearer|basic)")


def _match_starts(text: str) -> list[int]:
    """
    Every position where a ``_SECRET_VALUE`` match could start, in no order. Python's regex
    engine tries all the alternation's branches at every position (~400 us for 8 KB of prose);
    finding the literals the branches start with, then one ``match`` per candidate, gives the
    same matches for ~60 us (measured, docs/decisions.md).
    """
    starts: list[int] = []
    find = text.find
    for anchor in _ANCHORS:
        at = find(anchor)
        while at != -1:
            if anchor != "k-":
                starts.append(at)
            elif at and text[at - 1] in "spr":
                starts.append(at - 1)
            at = find(anchor, at + 1)
    if "gh" in text:
        starts.extend(found.start() for found in _GITHUB.finditer(text))
    lowered = text.lower()
    if len(lowered) != len(text):  # positions would not line up (a few characters lower to two)
        starts.extend(found.start() for found in _AUTH_BRANCH.finditer(text))
    elif "b" in lowered:
        for word in ("bearer", "basic"):
            at = lowered.find(word)
            while at != -1:
                starts.append(at)
                at = lowered.find(word, at + 1)
    return starts


_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


def message_role(message: BaseMessage) -> str:
    """
    The GenAI role of a LangChain message (``human`` is ``user``, ``ai`` is ``assistant``).
    """
    kind = message.type
    if kind.endswith("MessageChunk"):  # streamed messages report their class name as type
        kind = kind[: -len("MessageChunk")].lower()
    role = _ROLES.get(kind)
    if role is not None:
        return role
    return str(getattr(message, "role", None) or message.type)


class _Walk:
    """
    One walk's state: the containers on the current path (cycles) and the output budget left.
    """

    __slots__ = ("left", "path")

    def __init__(self, budget: int) -> None:
        self.left = budget
        self.path: set[int] = set()


class Serializer:
    """
    Converts any object to JSON-compatible data and JSON text, with secrets redacted and
    long values cut. Configured once per handler; calls never raise.

    Args:
        max_length: longest string (and longest JSON text) kept before truncation.
        max_items: most items kept from one list or mapping.
    """

    __slots__ = ("max_items", "max_length")

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH, max_items: int = _DEFAULT_MAX_ITEMS) -> None:
        if max_length < MIN_MAX_LENGTH:
            raise ValueError(f"max_content_length must be at least {MIN_MAX_LENGTH} characters, got {max_length}")
        self.max_length = max_length
        self.max_items = max_items

    # -- public entry points ------------------------------------------------------------

    def dumps(self, obj: Any) -> str:
        """
        JSON text of *obj*: redacted, each string capped, the whole text capped and marked.
        """
        kind = type(obj)
        if kind is str and len(obj) > self.max_length:  # a long document: redacted once, as it is cut
            return self.cut(orjson.dumps(self.text(obj)).decode())
        way = _WAYS.get(kind)
        if way is not None and (step := way[0]) in _MESSAGE_STEPS:  # a message or a chat prompt: plain text?
            if step is Serializer._message:
                plain = self._plain_messages((obj,))
                if plain is not None:
                    return self.text(orjson.dumps(plain[0]).decode())
            elif kind is ChatPromptValue:
                plain = self._plain_messages(obj.messages)
                if plain is not None:
                    return self.text(orjson.dumps(plain).decode())
        try:
            text = orjson.dumps(self.jsonable(obj)).decode()
        except Exception as exc:  # the walker only yields JSON types; this is a last resort
            text = orjson.dumps(f"<unserializable {type(obj).__name__}: {type(exc).__name__}>").decode()
        return self.text(text)

    def _plain_messages(self, messages: Any) -> list[dict[str, str]] | None:
        """
        What the walk makes of plain text messages (no name, tool calls or tool result; string
        content) that fit the length budget and item cap, without the walk; None otherwise.
        """
        if len(messages) > self.max_items:
            return None
        out = []
        size = 16
        for message in messages:
            content = message.content
            if type(content) is not str or message.name or isinstance(message, ToolMessage):
                return None
            if isinstance(message, AIMessage) and message.tool_calls:
                return None
            role = message_role(message)
            size += 32 + len(role) + len(content)  # the walk's budget for it: keys, brackets, both strings
            out.append({"role": role, "content": content})
        return out if size <= self.max_length else None

    def text(self, value: str) -> str:
        """
        A plain string (an error message, a stack trace) redacted and capped. Only what is kept
        (and a margin past the cut) is scanned, so a 50 MB text costs what an 8 KB one does.
        """
        limit = self.max_length
        if len(value) <= limit:
            return redact_text(value)
        kept = redact_text(value[: limit + _SECRET_MARGIN])[:limit]
        return f"{kept}…[truncated {len(value) - limit} of {len(value)} chars]"

    def cut(self, text: str) -> str:
        """
        Cap *text* at ``max_length`` characters, saying how much was cut.
        """
        if len(text) <= self.max_length:
            return text
        return f"{text[: self.max_length]}…[truncated {len(text) - self.max_length} of {len(text)} chars]"

    def jsonable(self, obj: Any) -> Any:
        """
        JSON-compatible data for *obj*; a field that cannot be converted becomes a marker string.
        """
        if abc.get_cache_token() != _ways_token:  # an ABC registration may change what a type is
            _forget()
        return self._walk(obj, 0, _Walk(self.max_length))

    def nested(self, value: Any, depth: int) -> tuple[Any, int]:
        """
        *value* walked as the walk meets it *depth* levels down, and the length budget it took,
        for a caller that lays out the containers around it itself and takes ``dumps`` instead
        when the whole would not fit the budget (``_messages``' message parts).
        """
        if abc.get_cache_token() != _ways_token:
            _forget()
        walk = _Walk(self.max_length)
        return self._field(value, depth, walk), self.max_length - walk.left

    # -- the walker -----------------------------------------------------------------------

    def _walk(self, obj: Any, depth: int, walk: _Walk) -> Any:
        if obj is None or obj is True or obj is False:
            return obj
        kind = type(obj)
        if kind is str:
            walk.left -= len(obj)
            return obj if len(obj) <= self.max_length else self.text(obj)  # redacted only as far as it is kept
        if kind is int:
            return obj
        if kind is float:
            return obj if math.isfinite(obj) else str(obj)
        if depth > _MAX_DEPTH:
            walk.left -= 16
            return f"<max depth: {kind.__name__}>"
        way = _WAYS.get(kind)
        if way is None:
            way = _learn(obj)
        step, nested = way
        if not nested:
            return step(self, obj, depth, walk)
        oid = id(obj)
        path = walk.path
        if oid in path:
            return f"<cycle: {kind.__name__}>"
        path.add(oid)
        try:
            walk.left -= CONTAINER_COST  # a wide tree of small containers spends its budget too
            return step(self, obj, depth + 1, walk)
        finally:
            path.discard(oid)

    def _mapping(self, items: Any, depth: int, walk: _Walk, size: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        limit = self.max_length
        cap = self.max_items
        for index, (key, value) in enumerate(items):
            if index >= cap or walk.left < 0:
                out["…"] = f"{size - index} more items"
                break
            name = key if type(key) is str else self._safe_str(key)
            if is_secret_key(name):
                walk.left -= len(name)
                out[name] = REDACTED
                continue
            kind = type(value)
            if kind is str and len(value) <= limit:  # most leaves: _field's first test, inline
                walk.left -= len(name) + len(value)
                out[name] = value
            else:
                walk.left -= len(name)
                out[name] = self._field(value, depth, walk)
        return out

    def _sequence(self, items: Any, depth: int, walk: _Walk, size: int) -> list[Any]:
        out = []
        limit = self.max_length
        cap = self.max_items
        for index, value in enumerate(items):
            if index >= cap or walk.left < 0:
                out.append(f"… {size - index} more items")
                break
            if type(value) is str and len(value) <= limit:  # most leaves: _field's first test, inline
                walk.left -= len(value)
                out.append(value)
            else:
                out.append(self._field(value, depth, walk))
        return out

    def _field(self, value: Any, depth: int, walk: _Walk) -> Any:
        kind = type(value)
        if kind is str and len(value) <= self.max_length:  # most leaves: no walk, no try
            walk.left -= len(value)
            return value
        if value is None or kind is int or kind is bool:
            return value
        try:
            return self._walk(value, depth, walk)
        except Exception as exc:
            return f"<unserializable {type(value).__name__}: {type(exc).__name__}>"

    # One step per kind of object, chosen by _learn from its type (see _WAYS). Leaves take the
    # walk's depth; nested steps run inside the cycle check, one level deeper, with their
    # container's CONTAINER_COST already taken from the budget.

    def _dict(self, obj: Any, depth: int, walk: _Walk) -> Any:
        return self._mapping(obj.items(), depth, walk, len(obj))

    def _list(self, obj: Any, depth: int, walk: _Walk) -> Any:
        return self._sequence(obj, depth, walk, len(obj))

    def _message(self, obj: Any, depth: int, walk: _Walk) -> Any:
        fields = self.message(obj)  # a new dict, so never on the path: _walk's prologue for it without the cycle check
        if depth > _MAX_DEPTH:
            walk.left -= 16
            return "<max depth: dict>"
        if self._as_they_are(fields, walk):
            return fields
        walk.left -= CONTAINER_COST
        return self._mapping(fields.items(), depth + 1, walk, len(fields))

    def _as_they_are(self, fields: dict[str, Any], walk: _Walk) -> bool:
        """
        True, with their cost taken from the budget, when walking a message's *fields* would
        copy them unchanged: all short strings (the usual message; its keys are never secret),
        no more than the item cap, the budget not spent before the last one.
        """
        if len(fields) > self.max_items:
            return False
        left = walk.left - CONTAINER_COST
        limit = self.max_length
        for key, value in fields.items():
            if left < 0 or type(value) is not str or len(value) > limit:
                return False
            left -= len(key) + len(value)
        walk.left = left
        return True

    def _document(self, obj: Any, depth: int, walk: _Walk) -> Any:
        doc: dict[str, Any] = {"page_content": obj.page_content, "metadata": obj.metadata}
        if obj.id is not None:
            doc["id"] = obj.id
        return self._walk(doc, depth, walk)

    def _prompt(self, obj: Any, depth: int, walk: _Walk) -> Any:
        return self._walk(obj.to_messages(), depth, walk)

    def _model(self, obj: Any, depth: int, walk: _Walk) -> Any:
        fields = type(obj).model_fields
        return self._mapping(((name, getattr(obj, name, None)) for name in fields), depth, walk, len(fields))

    def _enum(self, obj: Any, depth: int, walk: _Walk) -> Any:
        return self._walk(obj.value, depth, walk)

    def _other(self, obj: Any, depth: int, walk: _Walk) -> Any:
        """Types no cheaper test recognises: asked each time, as these answers may differ per object."""
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            fields_ = dataclasses.fields(obj)
            return self._mapping(((f.name, getattr(obj, f.name, None)) for f in fields_), depth, walk, len(fields_))
        tolist = getattr(obj, "tolist", None)
        if callable(tolist) and hasattr(obj, "shape"):  # numpy-like arrays and scalars
            size = getattr(obj, "size", 0)
            if isinstance(size, int) and size > self.max_items * 10:
                return f"<{kind_name(obj)} shape={getattr(obj, 'shape', '?')} dtype={getattr(obj, 'dtype', '?')}>"
            return self._walk(tolist(), depth, walk)
        if isinstance(obj, BaseException):
            return f"{type(obj).__name__}: {self._safe_str(obj)}"
        return self._walk(self._safe_repr(obj), depth, walk)

    # -- LangChain shapes ----------------------------------------------------------------

    def message(self, message: BaseMessage) -> dict[str, Any]:
        """
        One message as ``{"role", "content", …}``: role and content first, ids and tool calls
        only when present. Never the whole pydantic model (slow, and it carries extras).
        """
        out: dict[str, Any] = {"role": message_role(message), "content": message.content}
        if message.name:
            out["name"] = message.name
        # Only AI messages have tool calls; getattr on another pydantic message misses slowly.
        tool_calls = message.tool_calls if isinstance(message, AIMessage) else None
        if tool_calls:
            out["tool_calls"] = [{"id": c.get("id"), "name": c.get("name"), "args": c.get("args")} for c in tool_calls]
        if isinstance(message, ToolMessage):
            out["tool_call_id"] = message.tool_call_id
        return out

    @staticmethod
    def _safe_str(obj: Any) -> str:
        try:
            return str(obj)
        except Exception:
            return f"<{kind_name(obj)} (str failed)>"

    @staticmethod
    def _safe_repr(obj: Any) -> str:
        try:
            return repr(obj)
        except Exception:
            return f"<{kind_name(obj)} (repr failed)>"


Step = Callable[[Serializer, Any, int, _Walk], Any]
_MESSAGE_STEPS = (Serializer._message, Serializer._prompt)

# How the walker treats each type it has met: (step, nested). Filled by _learn from the same
# isinstance tests, in the same order, as a chain of them would ask each object (~20 for a prompt
# value, some on pydantic's ABCMeta); an ABC registration anywhere (abc.get_cache_token) or a
# full table starts it afresh, so a type seen again costs one dict lookup.
_WAYS: dict[type, tuple[Step, bool]] = {}
_WAYS_MAX = 512
_ways_token: object = abc.get_cache_token()


def _forget() -> None:
    global _ways_token
    _ways_token = abc.get_cache_token()
    _WAYS.clear()


def _learn(obj: Any) -> tuple[Step, bool]:
    """
    The way for *obj*'s type, kept for the next object of that type, unless the type may lie
    about its class (proxies and mocks define ``__class__``; ``isinstance`` believes them): those
    are asked each time, by both classes, as ``isinstance`` would.
    """
    kind = type(obj)
    if any("__class__" in vars(k) for k in kind.__mro__[:-1]):
        try:
            claimed = obj.__class__
        except AttributeError:  # as isinstance: no claim; any other error is the object's own
            claimed = kind
        return _classify((kind, claimed) if isinstance(claimed, type) and claimed is not kind else (kind,))
    if len(_WAYS) >= _WAYS_MAX:
        _forget()
    way = _WAYS[kind] = _classify((kind,))
    return way


def _classify(kinds: tuple[type, ...]) -> tuple[Step, bool]:
    """The walker's isinstance tests, in its order, asked of a type (and the class it claims)."""

    def isa(*bases: type) -> bool:
        return any(issubclass(k, bases) for k in kinds)

    if kinds == (dict,):
        return Serializer._dict, True
    if kinds == (list,) or kinds == (tuple,):
        return Serializer._list, True
    if isa(SecretStr, SecretBytes):
        return _redacted, False
    if isa(str, int, float) and not isa(enum.Enum):
        # str/int/float subclasses (TextAccessor, numpy scalars that subclass float…)
        return (_as_str if isa(str) else _as_float if isa(float) else _as_int), False
    if isa(bytes, bytearray, memoryview):
        return _size, False
    if isa(BaseMessage):  # before Mapping, as pydantic's abstract checks cost
        return Serializer._message, True
    if isa(Mapping):
        return Serializer._dict, True
    if isa(list, tuple, set, frozenset):
        return Serializer._list, True
    if isa(Document):
        return Serializer._document, True
    if isa(PromptValue):
        return Serializer._prompt, True
    if isa(BaseModel):
        return Serializer._model, True
    if isa(_dt.datetime, _dt.date, _dt.time):
        return _isoformat, True
    if isa(_dt.timedelta):
        return _seconds, True
    if isa(enum.Enum):
        return Serializer._enum, True
    if isa(uuid.UUID, Decimal, PurePath):
        return _as_text, True
    return Serializer._other, True


def _redacted(_: Serializer, obj: Any, depth: int, walk: _Walk) -> Any:
    return REDACTED


def _as_str(serializer: Serializer, obj: Any, depth: int, walk: _Walk) -> Any:
    return serializer._walk(str(obj), depth, walk)


def _as_float(serializer: Serializer, obj: Any, depth: int, walk: _Walk) -> Any:
    return serializer._walk(float(obj), depth, walk)


def _as_int(serializer: Serializer, obj: Any, depth: int, walk: _Walk) -> Any:
    return serializer._walk(int(obj), depth, walk)


def _size(_: Serializer, obj: Any, depth: int, walk: _Walk) -> Any:
    return f"<{len(obj)} bytes>"


def _isoformat(_: Serializer, obj: Any, depth: int, walk: _Walk) -> Any:
    return obj.isoformat()


def _seconds(_: Serializer, obj: Any, depth: int, walk: _Walk) -> Any:
    return obj.total_seconds()


def _as_text(_: Serializer, obj: Any, depth: int, walk: _Walk) -> Any:
    return str(obj)


def kind_name(obj: Any) -> str:
    """
    ``module.Class`` of *obj* for markers, never raising.
    """
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"
