"""Progress reporting: a bar on a terminal, a line every few seconds in a log."""
import io

from smoothcert.utils import progress
from smoothcert.utils.progress_bars import LogProgress


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_log_stream_gets_few_lines_not_one_per_batch():
    out = io.StringIO()
    bar = progress(total=1000, desc="certify", unit="input", file=out)
    assert isinstance(bar, LogProgress)
    for _ in range(1000):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    # The default interval is 10 s; this loop takes milliseconds: only the closing line.
    assert lines == [lines[-1]] and lines[-1].startswith("certify: 1000/1000 input (100%)")
    assert "\r" not in out.getvalue()


def test_log_lines_are_throttled_to_the_interval(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("smoothcert.utils.progress_bars.time.monotonic", lambda: now[0])
    out = io.StringIO()
    bar = LogProgress(total=100, desc="train", unit="batch", file=out, interval=5.0)
    for _ in range(100):
        now[0] += 0.25  # 4 updates a second
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 25 // 5 + 1  # one per 5 s of the 25 s, plus the final one
    assert "ETA" in lines[0] and "4 batch/s" in lines[0]


def test_iteration_and_resumed_initial_count():
    out = io.StringIO()
    seen = list(progress(range(7), desc="groups", file=out))
    assert seen == list(range(7)) and out.getvalue().startswith("groups: 7/7 it")
    out = io.StringIO()
    bar = progress(total=10, initial=4, desc="certify", unit="input", file=out)
    bar.update(6)
    bar.close()
    assert out.getvalue().startswith("certify: 10/10 input")


def test_terminal_gets_a_tqdm_bar(monkeypatch):
    from tqdm.auto import tqdm

    bar = progress(total=3, desc="x", file=_Tty())
    assert isinstance(bar, tqdm)
    bar.close()


def test_interval_from_environment(monkeypatch):
    monkeypatch.setenv("SMOOTHCERT_PROGRESS_INTERVAL", "0")
    out = io.StringIO()
    bar = progress(total=3, desc="x", file=out)
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert len(out.getvalue().splitlines()) == 4
