"""Did-you-mean: the one way a name that is not known becomes a one-line error.

Example::

    raise unknown_name_error("method", "dmm", list_methods())
    # BenchError: unknown method 'dmm'; did you mean dm?
"""

from __future__ import annotations

import difflib
from typing import Iterable

from bench.errors import BenchError


def close_names(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` known names close to ``name`` (difflib's ratio >= 0.6), closest first."""
    return difflib.get_close_matches(name, list(known), n=n)


def suggestion(name: str, known: Iterable[str], listing: str = "known", n: int = 3,
               otherwise: str | None = None) -> str:
    """``"; did you mean a, b?"``; with no close name ``"; <otherwise>"`` when given, else
    ``"; <listing>: <every known name, sorted>"``."""
    known = list(known)
    close = close_names(name, known, n)
    if close:
        return f"; did you mean {', '.join(close)}?"
    return f"; {otherwise}" if otherwise is not None else f"; {listing}: {', '.join(sorted(known))}"


def unknown_name_error(kind: str, name: str, known: Iterable[str], where: str = "", listing: str = "known",
                       n: int = 3, otherwise: str | None = None) -> BenchError:
    """``[<where>: ]unknown <kind> '<name>'; did you mean ...?`` (or the known names), one line.

    Example::

        raise unknown_name_error("dataset", "cifar", list_datasets(), where="spec.toml")
    """
    prefix = f"{where}: " if where else ""
    return BenchError(f"{prefix}unknown {kind} {name!r}{suggestion(name, known, listing, n, otherwise)}")
