"""Check that every number a results README states comes from the file it cites.

A README's prose and tables are scanned for decimal numbers (``28.99``, ``-1.46``); each must be
one of the strings the test derives from the committed data (``expected``), so a number typed by
hand, or left behind when the data changed, fails the test. Integers are structural (IPC, seeds,
epochs, names like CIFAR-10) and are checked by the test's own assertions where they state facts.
Fenced code blocks and inline code are skipped: they are commands, not claims.

Example::

    unchecked = unchecked_decimals(readme_text, {"28.99", "+0.69"})
    assert not unchecked, unchecked
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```.*?```", re.S)
_INLINE = re.compile(r"`[^`\n]*`")
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_DECIMAL = re.compile(r"(?<![\w.])[+-]?\d+\.\d+(?![\w.]*\d)")


def prose(text: str) -> str:
    """The README without code blocks, inline code and link targets."""
    return _LINK_TARGET.sub("]", _INLINE.sub("", _FENCE.sub("", text)))


def decimals(text: str) -> list[str]:
    """Every decimal number in the README's prose, as written (sign included)."""
    return [m.group(0) for m in _DECIMAL.finditer(prose(text))]


def unchecked_decimals(text: str, expected: set[str]) -> list[str]:
    """The decimals of ``text`` that are not among ``expected`` (signs compared as written, and
    without them, so ``-0.26`` is covered by ``-0.26`` and a bare ``0.26`` by ``0.26``)."""
    return [d for d in decimals(text) if d not in expected and d.lstrip("+") not in expected]
