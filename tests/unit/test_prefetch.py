"""How many claimed jobs a worker holds ready: enough to cover one claim's round trip."""

from actions_server.queue.prefetch import Prefetch, ReadyJobs


def test_nothing_is_held_before_anything_was_measured() -> None:
    prefetch = Prefetch(16)
    assert prefetch.size == 0
    prefetch.claimed(0.002)
    assert prefetch.size == 0  # no job has finished yet


def test_jobs_faster_than_a_claim_are_held_up_to_32_times_the_concurrency() -> None:
    prefetch = Prefetch(16)
    prefetch.claimed(0.002)
    prefetch.ran(0.001)  # two jobs per slot finish during one claim
    assert prefetch.size == 32
    prefetch.ran(0.00001)  # then much faster ones: the average moves, the cap holds
    for _ in range(50):
        prefetch.ran(0.00001)
    assert prefetch.size == 16 * 32


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


def test_held_jobs_come_out_in_priority_order() -> None:
    ready = ReadyJobs()
    for job_id, priority in ((1, 0), (2, 5), (3, 1)):
        ready.add(job_id, (-priority, job_id), {"id": job_id}, now=0.0)
    assert [ready.pop()["id"] for _ in range(3)] == [2, 3, 1]
    assert len(ready) == 0


def test_a_job_claimed_again_replaces_its_stale_entry() -> None:
    ready = ReadyJobs()
    ready.add(7, (0, 7), {"id": 7, "claim": "old"}, now=0.0)
    ready.add(7, (0, 7), {"id": 7, "claim": "new"}, now=1.0)
    assert len(ready) == 1
    assert ready.pop() == {"id": 7, "claim": "new"}
    assert len(ready) == 0


def test_removed_lost_and_long_held_jobs_leave_the_list() -> None:
    ready = ReadyJobs()
    for job_id in range(1, 6):
        ready.add(job_id, (0, job_id), {"id": job_id}, now=float(job_id))
    assert ready.remove(1) == {"id": 1}
    assert ready.remove(1) is None
    assert [row["id"] for row in ready.held_since_before(3.5)] == [2, 3]
    assert [row["id"] for row in ready.keep_only({5})] == [4]
    assert [row["id"] for row in ready.rows()] == [5]
    assert ready.pop() == {"id": 5}


def test_a_stall_stops_the_prefetch_until_quick_jobs_bring_it_back() -> None:
    prefetch = Prefetch(4)
    prefetch.claimed(0.004)
    prefetch.ran(0.001)
    assert prefetch.size == 16
    prefetch.stalled(0.5)
    assert prefetch.size == 0
    for _ in range(40):
        prefetch.ran(0.001)
    assert prefetch.size >= 12  # the average is back within a few percent
