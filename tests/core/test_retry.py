"""egoclean.core.retry: waits (doubling, cap, jitter), attempts, the deadline, what is retried and what is not."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egoclean.core.errors import InvalidInputError
from egoclean.core.retry import Backoff, GaveUp, call


class Clock:
    """A fake clock that the fake sleep advances: the tests never wait."""

    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def sleep(self, s: float) -> None:
        assert s >= 0
        self.slept.append(s)
        self.now += s

    def __call__(self) -> float:
        return self.now


class Flaky:
    """Raises `errors` in turn, then returns "ok"."""

    def __init__(self, *errors: Exception):
        self.errors, self.calls = list(errors), 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_waits_double_up_to_the_cap_without_jitter():
    clock = Clock()
    policy = Backoff(attempts=7, base_sec=0.5, cap_sec=4.0, jitter=0)
    assert call(Flaky(*[OSError()] * 6), policy, OSError, sleep=clock.sleep, clock=clock) == "ok"
    assert clock.slept == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


@given(failures=st.integers(1, 200), base=st.floats(0, 10), cap=st.floats(0, 60), jitter=st.floats(0, 1),
       seed=st.integers(0, 2**32))
def test_a_jittered_wait_stays_within_its_band(failures, base, cap, jitter, seed):
    policy = Backoff(attempts=2, base_sec=base, cap_sec=cap, jitter=jitter)
    w = min(cap, base * 2.0 ** (failures - 1))
    got = policy.wait(failures, random.Random(seed))
    assert (1 - jitter) * w - 1e-9 <= got <= w + 1e-9


def test_jitter_spreads_the_waits_of_clients_that_failed_together():
    policy = Backoff(attempts=2, base_sec=1.0, cap_sec=1.0, jitter=0.5)
    rng = random.Random(7)
    waits = {round(policy.wait(1, rng), 6) for _ in range(20)}
    assert len(waits) == 20 and min(waits) >= 0.5 and max(waits) <= 1.0


def test_giving_up_names_the_last_failure_the_attempts_and_the_time():
    clock = Clock()
    fn = Flaky(*[ConnectionError(f"try {i}") for i in range(10)])
    with pytest.raises(GaveUp) as e:
        call(fn, Backoff(attempts=3, base_sec=1, cap_sec=10, jitter=0), ConnectionError, sleep=clock.sleep,
             clock=clock)
    assert fn.calls == 3 and clock.slept == [1, 2]
    g = e.value
    assert (g.attempts, g.elapsed_sec, str(g.error)) == (3, 3.0, "try 2")
    assert g.__cause__ is g.error


def test_a_failure_the_predicate_refuses_passes_through_at_once():
    clock = Clock()
    fn = Flaky(ConnectionError("transient"), PermissionError("permanent"))
    with pytest.raises(PermissionError, match="permanent"):
        call(fn, Backoff(attempts=9, base_sec=1, cap_sec=1), lambda e: isinstance(e, ConnectionError),
             sleep=clock.sleep, clock=clock)
    assert fn.calls == 2 and len(clock.slept) == 1


def test_the_deadline_cuts_the_last_wait_and_stops_the_tries():
    clock = Clock()
    fn = Flaky(*[TimeoutError()] * 100)
    with pytest.raises(GaveUp) as e:
        call(fn, Backoff(attempts=100, base_sec=1, cap_sec=4, jitter=0, deadline_sec=6.0), TimeoutError,
             sleep=clock.sleep, clock=clock)
    # waits 1, 2, then 3 (4 cut to the 3 s left); the try at 6 s fails and none is left
    assert clock.slept == [1, 2, 3] and fn.calls == 4
    assert e.value.attempts == 4 and e.value.elapsed_sec == 6.0


def test_on_retry_sees_each_failure_before_its_wait():
    clock = Clock()
    seen = []
    call(Flaky(OSError("a"), OSError("b")), Backoff(attempts=3, base_sec=0.25, cap_sec=1, jitter=0), OSError,
         on_retry=lambda e, n, d: seen.append((str(e), n, d)), sleep=clock.sleep, clock=clock)
    assert seen == [("a", 1, 0.25), ("b", 2, 0.5)]


def test_a_loop_keeps_its_own_state_between_tries():
    # The shape of a resuming read: the loop's position survives the failures.
    clock = Clock()
    data, pos, out = b"abcdefgh", 0, b""
    drops = iter([3, 5])  # the connection drops after these positions
    tries = Backoff(attempts=5, base_sec=0.1, cap_sec=1, jitter=0).start(sleep=clock.sleep, clock=clock)
    while pos < len(data):
        try:
            stop = next(drops, len(data))
            out += data[pos:stop]
            pos = stop
            if pos < len(data):
                raise ConnectionResetError(f"dropped at {pos}")
        except ConnectionResetError as e:
            tries.failed(e)
    assert out == data and tries.failures == 2 and clock.slept == [0.1, 0.2]


def test_keyboard_interrupt_is_never_retried():
    fn = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        call(fn, Backoff(attempts=5, base_sec=0, cap_sec=0), lambda e: True)
    assert fn.calls == 1


@pytest.mark.parametrize("bad", [dict(attempts=0), dict(base_sec=-1), dict(cap_sec=-0.5), dict(jitter=1.5),
                                 dict(deadline_sec=-1), dict(attempts=2.5)])
def test_bad_settings_are_one_line_errors(bad):
    with pytest.raises(InvalidInputError, match="^retry settings: .*") as e:
        Backoff(**(dict(attempts=3, base_sec=0.1, cap_sec=1.0) | bad))
    assert "\n" not in str(e.value)
