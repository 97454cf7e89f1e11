"""One status line for long commands (``micrograd demo``, ``micrograd bench``, the examples).

On a terminal the line is redrawn in place with ``\\r`` (a step counter at most every 0.05 s,
so drawing never costs more than the work it reports); in a log or a pipe it becomes plain lines, without
control characters: one per update, or with a known total about one per tenth of the run.

    progress = Progress(total=100)
    for k in range(100):
        ...
        progress.update(f"loss {loss:.4f}", done=k + 1)   # step 37/100 |#########-------| loss ...
    progress.note("a message that stays")                 # printed on its own line
    progress.clear()                                      # blank the status line at the end
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Progress:
    WIDTH = 24  # characters of the bar
    REDRAW_S = 0.05

    def __init__(
        self,
        total: Optional[int] = None,
        *,
        stream: Optional[TextIO] = None,
        enabled: bool = True,
        unit: str = "step",
    ) -> None:
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.unit = unit
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.last_draw = float("-inf")
        self.width = 0  # length of the line on screen, to blank out what a shorter one leaves
        self.every = max(1, (total or 0) // 10)

    def rate(self, done: int) -> float:
        """Units done per second since the bar was made."""
        return done / max(time.perf_counter() - self.start, 1e-9)

    def update(self, text: str, done: Optional[int] = None) -> None:
        """Show ``text``; with a total and ``done``, behind '<unit> done/total |bar|'."""
        if not self.enabled:
            return
        last = self.total is not None and done == self.total
        if self.tty:
            now = time.perf_counter()
            if done is not None and not last and now - self.last_draw < self.REDRAW_S:
                return  # a step counter can tick faster than a terminal needs
            self.last_draw = now
            self._draw(self._bar(done) + text)
            if last:  # the finished bar stays on screen
                self.stream.write("\n")
                self.width = 0
        elif done is None or self.total is None:
            self.stream.write(text + "\n")
        elif done % self.every == 0 or last:
            self.stream.write(f"{self.unit} {done}/{self.total}: {text}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line that stays (a skipped step, a failure), under which the status line goes on."""
        if not self.enabled:
            return
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Blank the status line (on a terminal; a log keeps its lines)."""
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0

    def _bar(self, done: Optional[int]) -> str:
        if self.total is None or done is None:
            return ""
        filled = self.WIDTH * min(done, self.total) // max(self.total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return f"{self.unit} {done:>{len(str(self.total))}}/{self.total} |{bar}| "

    def _draw(self, line: str) -> None:
        self.stream.write("\r" + line.ljust(self.width))
        self.width = len(line)
