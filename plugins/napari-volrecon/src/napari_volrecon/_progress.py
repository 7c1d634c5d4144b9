"""volrecon's ``progress(done, total)`` callbacks shown as napari progress bars (activity dock)."""

from __future__ import annotations

from typing import Any, Callable


class NapariProgress:
    """One napari progress bar per stage, fed by volrecon's ``progress(done, total)`` callbacks.

    Safe to call from a worker thread; :meth:`close` ends every bar it opened.
    """

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}

    def callback(self, stage: str) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback for ``stage``."""

        def update(done: int, total: int) -> None:
            from napari.utils import progress

            bar = self._bars.get(stage)
            if bar is None:
                bar = self._bars[stage] = progress(total=max(int(total), 1), desc=stage)
            bar.total = max(int(total), 1)
            bar.n = min(int(done), bar.total)
            bar.refresh()

        return update

    def close(self) -> None:
        """Close all bars."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
