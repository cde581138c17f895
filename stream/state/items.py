"""Item ids (strings on the wire) to dense ints (inside models), with a hard cap."""

from __future__ import annotations

#: Returned by :meth:`ItemIndex.intern` once the index is full: the click is scored and
#: monitored but not learned, so memory stays bounded under a flood of new ids.
OVERFLOW = -1
#: Distinct items an index learns when the caller names no cap (``--max-items``).
DEFAULT_MAX_ITEMS = 1_000_000


class ItemIndex:
    """A bounded, append-only mapping between external item ids and dense ints.

    Parameters
    ----------
    max_items
        Hard cap on distinct items. Ids first seen after the cap is reached map to
        :data:`OVERFLOW`. A retrain (see the drift policy) starts a fresh index.

    Examples
    --------
    >>> idx = ItemIndex(max_items=2)
    >>> idx.intern("a"), idx.intern("b"), idx.intern("a"), idx.intern("c")
    (0, 1, 0, -1)
    >>> idx.name(1), len(idx), idx.overflowed
    ('b', 2, 1)
    """

    __slots__ = ("max_items", "_ids", "_names", "overflowed")

    def __init__(self, max_items: int = DEFAULT_MAX_ITEMS) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.max_items = max_items
        self._ids: dict[str, int] = {}
        self._names: list[str] = []
        self.overflowed = 0

    def intern(self, item_id: str) -> int:
        """The int of ``item_id``, adding it if new and there is room."""
        i = self._ids.get(item_id)
        if i is not None:
            return i
        if len(self._names) >= self.max_items:
            self.overflowed += 1
            return OVERFLOW
        i = len(self._names)
        self._ids[item_id] = i
        self._names.append(item_id)
        return i

    def get(self, item_id: str) -> int | None:
        """The int of ``item_id`` if known, without adding it."""
        return self._ids.get(item_id)

    def name(self, i: int) -> str:
        return self._names[i]

    def names(self, items: list[int]) -> list[str]:
        names = self._names
        return [names[i] for i in items]

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._ids
