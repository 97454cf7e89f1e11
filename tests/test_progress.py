"""micrograd/progress.py: the status line of the commands (demo, bench, examples)."""
import io

from micrograd.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_a_bar_is_redrawn_on_one_line_and_stays_when_done():
    stream = FakeTerminal()
    progress = Progress(3, stream=stream)
    for k in range(3):
        progress.last_draw = float("-inf")  # no throttling in the test
        progress.update("loss 0.5000", done=k + 1)
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "step 3/3 |########################| loss 0.5000" in text


def test_a_terminal_redraws_a_fast_counter_at_most_every_twentieth_of_a_second():
    stream = FakeTerminal()
    progress = Progress(1000, stream=stream)
    for k in range(999):
        progress.update("x", done=k + 1)  # far faster than 20 per second
    assert 1 <= stream.getvalue().count("\r") < 999


def test_a_shorter_line_blanks_what_the_longer_one_left():
    stream = FakeTerminal()
    progress = Progress(2, stream=stream)
    progress.update("loss 10.0000  accuracy 100.0%", done=1)
    progress.last_draw = float("-inf")
    progress.update("loss 0.5000  accuracy 50.0%", done=2)
    first, second = stream.getvalue().split("\r")[1:]
    assert len(second.rstrip("\n")) >= len(first)


def test_in_a_log_a_counter_prints_about_ten_lines():
    stream = io.StringIO()
    progress = Progress(100, stream=stream)
    for k in range(100):
        progress.update("loss 0.2500", done=k + 1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in stream.getvalue()
    assert lines[-1] == "step 100/100: loss 0.2500"


def test_status_text_and_notes():
    log, tty = io.StringIO(), FakeTerminal()
    for stream in (log, tty):
        progress = Progress(stream=stream)
        progress.update("[1/2] python: chain n=100")
        progress.note("skipped karpathy: not installed")
        progress.update("[2/2] cython: chain n=100")
        progress.clear()
    assert log.getvalue().splitlines() == [
        "[1/2] python: chain n=100", "skipped karpathy: not installed", "[2/2] cython: chain n=100"]
    screen = tty.getvalue()
    assert "skipped karpathy: not installed\n" in screen and screen.endswith("\r")  # status blanked


def test_disabled_prints_nothing():
    stream = FakeTerminal()
    progress = Progress(5, stream=stream, enabled=False)
    progress.update("x", done=5)
    progress.note("y")
    progress.clear()
    assert stream.getvalue() == ""


def test_rate_counts_units_per_second():
    progress = Progress(10)
    progress.start -= 2.0  # as if made two seconds ago
    assert 4.9 < progress.rate(10) <= 5.0
