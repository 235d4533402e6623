"""One open session as the compiled core holds it and as the store keeps it.

A :class:`Session` is a native object in the compiled core and a JSON object
in a stored person state, with the same keys in the same order, so ``orjson``
writes identical bytes for either form. A state read back holds dicts, which
:func:`open_sessions` turns into ``Session`` objects once; :func:`plain` goes
the other way for encoders that know only dicts (``json``). The operator that
opens, merges and closes sessions is ``sessions.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True, init=False)
class Session:
    """One open session: a native object in the compiled core, a JSON object when stored.

    Its fields are the keys the stored JSON object has always had, in the same
    order (``orjson`` writes a dataclass as that object), so stored bytes are
    unchanged; a state read back from the store holds plain dicts, which
    :func:`open_sessions` turns into ``Session`` objects once.
    """

    s: int  # first event time
    l: int  # noqa: E741 (the stored key) last event time
    k: list[Any]  # [ts, message id] of the first event by (ts, id): the session id's source
    c: int  # events
    n: dict[str, int]  # events by name
    pg: list[str]  # pages, the ``max_items`` smallest
    pr: list[str]  # products, likewise
    cv: float | None  # largest cart value
    x: bool  # converted
    ch: list[Any] | None  # [ts, message id, channel] of the first event with a channel
    cp: list[Any] | None  # [ts, message id, source, medium, name] of the first campaign
    z: list[Any] | None  # [ts, message id, zone] of the first event with a zone

    def __init__(  # noqa: PLR0917 (written out: mypyc compiles it, not a generated one)
        self,
        s: int,
        l: int,  # noqa: E741
        k: list[Any],
        c: int,
        n: dict[str, int],
        pg: list[str],
        pr: list[str],
        cv: float | None,
        x: bool,
        ch: list[Any] | None,
        cp: list[Any] | None,
        z: list[Any] | None,
    ) -> None:
        self.s = s
        self.l = l
        self.k = k
        self.c = c
        self.n = n
        self.pg = pg
        self.pr = pr
        self.cv = cv
        self.x = x
        self.ch = ch
        self.cp = cp
        self.z = z


def session_of(value: Session | Mapping[str, Any]) -> Session:
    """``value`` as a :class:`Session` (a stored session is a dict with the same keys)."""
    if isinstance(value, Session):
        return value
    return Session(value["s"], value["l"], value["k"], value["c"], value["n"], value["pg"],
                   value["pr"], value["cv"], value["x"], value.get("ch"), value.get("cp"),
                   value.get("z"))  # fmt: skip


def open_sessions(open_: list[Any]) -> list[Session]:
    """A slice's list of open sessions with every entry a :class:`Session` (converted in place).

    Only a state just read from the store holds dicts; they are converted once.
    """
    if open_ and not isinstance(open_[0], Session):
        open_[:] = [session_of(sess) for sess in open_]
    return open_


def session_dict(sess: Session) -> dict[str, Any]:
    """The stored form of a session (what ``orjson`` writes for it)."""
    return {"s": sess.s, "l": sess.l, "k": sess.k, "c": sess.c, "n": sess.n, "pg": sess.pg,
            "pr": sess.pr, "cv": sess.cv, "x": sess.x, "ch": sess.ch, "cp": sess.cp,
            "z": sess.z}  # fmt: skip


def plain(value: Any) -> Any:
    """``value`` (a person state or part of one) with each :class:`Session` as its stored dict.

    What ``json`` can encode (``orjson``, the store's codec, writes the same
    JSON for either form). Containers are copied, everything else is shared.
    """
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Session):
        return session_dict(value)
    return value
