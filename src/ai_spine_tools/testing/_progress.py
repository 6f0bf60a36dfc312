"""A live progress line for load tests: a bar, elapsed time, requests, current rate, errors."""

from __future__ import annotations

from typing import TextIO

from ai_spine_tools.testing._load import LoadProgress

__all__ = ["ProgressLine"]

_WIDTH = 24


class ProgressLine:
    """Pass as ``load_test(on_progress=ProgressLine(sys.stderr))``; call ``finish()`` at the end.

    On a terminal the line redraws in place; elsewhere (a log, CI) it is written out every
    ``every`` seconds, so the output stays readable.
    """

    def __init__(self, stream: TextIO, *, every: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self._written_at = 0.0
        self._last: LoadProgress | None = None

    def __call__(self, progress: LoadProgress) -> None:
        self._last = progress
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.render(progress))
            self.stream.flush()
        elif progress.elapsed_s - self._written_at >= self.every:
            self._written_at = progress.elapsed_s
            self.stream.write(self.render(progress) + "\n")
            self.stream.flush()

    def finish(self) -> None:
        """End the line (on a terminal) or write the final state (elsewhere)."""
        if self._last is None:
            return
        if self.tty:
            self.stream.write("\n")
        else:
            self.stream.write(self.render(self._last) + "\n")
        self.stream.flush()

    @staticmethod
    def render(progress: LoadProgress) -> str:
        """Return the progress line for ``progress``."""
        done = progress.elapsed_s / progress.duration_s if progress.duration_s else 1.0
        if progress.requests_limit:
            done = max(done, progress.requests / progress.requests_limit)
        filled = round(min(done, 1.0) * _WIDTH)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        return (
            f"[{bar}] {progress.elapsed_s:6.1f}s/{progress.duration_s:g}s  "
            f"{progress.requests:>9,} requests  {progress.requests_per_second:>9,.1f} req/s  "
            f"{progress.errors:,} errors"
        )
