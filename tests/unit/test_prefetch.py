"""How many claimed jobs a worker holds ready: enough to cover one claim's round trip."""

from actions_server.queue.prefetch import Prefetch


def test_nothing_is_held_before_anything_was_measured() -> None:
    prefetch = Prefetch(16)
    assert prefetch.size == 0
    prefetch.claimed(0.002)
    assert prefetch.size == 0  # no job has finished yet


def test_jobs_faster_than_a_claim_are_held_up_to_four_times_the_concurrency() -> None:
    prefetch = Prefetch(16)
    prefetch.claimed(0.002)
    prefetch.ran(0.001)  # two jobs per slot finish during one claim
    assert prefetch.size == 32
    prefetch.ran(0.00001)  # then much faster ones: the average moves, the cap holds
    for _ in range(50):
        prefetch.ran(0.00001)
    assert prefetch.size == 64


def test_jobs_slower_than_a_claim_are_not_held() -> None:
    prefetch = Prefetch(16)
    prefetch.claimed(0.002)
    prefetch.ran(5.0)
    assert prefetch.size == 0  # a held job could have started on another worker meanwhile


def test_the_averages_follow_a_change_without_jumping_on_one_sample() -> None:
    prefetch = Prefetch(4)
    prefetch.claimed(0.001)
    prefetch.ran(0.001)
    assert prefetch.size == 4
    prefetch.ran(1.0)  # one slow job: the average moves a fifth of the way
    assert 0.15 < prefetch.job_seconds < 0.25
    assert prefetch.size == 0
