"""Misfire, coalesce, max_instances and capacity decisions, on literal times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kairos.clock import to_us
from kairos.engine.policies import Planner, retry_due_us, time_left_s
from kairos.models import JobRecord, JobSpec, RunStatus
from kairos.store import FirePlan, QueuedRun, Slots

T0 = to_us(datetime(2026, 1, 1, tzinfo=UTC))
S = 1_000_000


def job(next_fire_us: int = T0, next_run_us: int | None = None, **spec: Any) -> JobRecord:
    body = {
        "trigger": {"type": "interval", "seconds": 10},
        "target": {"url": "http://127.0.0.1:9/"},
        **spec,
    }
    return JobRecord(
        "j",
        JobSpec.model_validate(body),
        next_fire_us,
        next_fire_us if next_run_us is None else next_run_us,
        T0 - 100 * S,
        T0 - 100 * S,
    )


def plan_due(
    job: JobRecord, now_us: int, *, running: int, budget: int, started: int = 0
) -> FirePlan:
    return Planner().plan_due(job, now_us, Slots(running, started, budget))


def statuses(plan: Any) -> list[tuple[int, RunStatus]]:
    return [((r.scheduled_for_us - T0) // S, r.status) for r in plan.runs]


def test_on_time_fire_starts_and_advances_one_interval() -> None:
    plan = plan_due(job(), T0 + 1000, running=0, budget=10)
    assert statuses(plan) == [(0, RunStatus.RUNNING)]
    assert plan.next_fire_us == T0 + 10 * S
    assert plan.next_run_us == T0 + 10 * S


def test_coalesce_runs_only_the_latest_of_a_backlog() -> None:
    plan = plan_due(job(coalesce=True), T0 + 35 * S, running=0, budget=10)
    assert statuses(plan) == [(0, RunStatus.SKIPPED), (30, RunStatus.RUNNING)]
    assert plan.runs[0].error == (
        "coalesced: the fires from here up to 2026-01-01T00:00:30+00:00 were merged into "
        "that one (coalesce: true)"
    )
    assert plan.next_fire_us == T0 + 40 * S


def test_a_fire_on_time_leaves_no_coalesced_row() -> None:
    plan = plan_due(job(coalesce=True), T0 + 5 * S, running=0, budget=10)
    assert statuses(plan) == [(0, RunStatus.RUNNING)]


def test_coalesced_fire_beyond_grace_is_one_missed_run() -> None:
    plan = plan_due(job(coalesce=True, misfire_grace_time=2), T0 + 35 * S, running=0, budget=10)
    assert statuses(plan) == [(0, RunStatus.SKIPPED), (30, RunStatus.MISSED)]
    assert "misfire_grace_time" in (plan.runs[1].error or "")
    assert plan.next_fire_us == T0 + 40 * S


def test_without_coalesce_each_fire_within_grace_runs_and_older_ones_are_missed() -> None:
    plan = plan_due(
        job(coalesce=False, misfire_grace_time=15, max_instances=10),
        T0 + 35 * S,
        running=0,
        budget=10,
    )
    assert statuses(plan) == [
        (0, RunStatus.MISSED),
        (10, RunStatus.MISSED),
        (20, RunStatus.RUNNING),
        (30, RunStatus.RUNNING),
    ]
    assert plan.next_fire_us == T0 + 40 * S


def test_unlimited_grace_runs_however_late() -> None:
    plan = plan_due(
        job(coalesce=True, misfire_grace_time=None), T0 + 86_400 * S, running=0, budget=1
    )
    assert statuses(plan) == [(0, RunStatus.SKIPPED), (86_400, RunStatus.RUNNING)]


def test_max_instances_reached_records_a_skipped_run() -> None:
    plan = plan_due(job(max_instances=2), T0, running=2, budget=10)
    assert statuses(plan) == [(0, RunStatus.SKIPPED)]
    assert "max_instances (2)" in (plan.runs[0].error or "")
    assert plan.next_fire_us == T0 + 10 * S


def test_no_budget_leaves_the_fire_due() -> None:
    plan = plan_due(job(), T0 + 1, running=0, budget=0)
    assert plan.runs == []
    assert (plan.next_fire_us, plan.next_run_us) == (T0, T0)


def test_budget_stops_a_backlog_part_way_and_the_rest_stays_due() -> None:
    plan = plan_due(
        job(coalesce=False, misfire_grace_time=None, max_instances=10),
        T0 + 35 * S,
        running=0,
        budget=2,
    )
    assert statuses(plan) == [(0, RunStatus.RUNNING), (10, RunStatus.RUNNING)]
    assert plan.next_fire_us == T0 + 20 * S


def test_long_outage_records_a_hundred_missed_fires_then_one_row_for_the_rest() -> None:
    plan = plan_due(
        job(coalesce=False, misfire_grace_time=5), T0 + 100_000 * S, running=0, budget=10
    )
    missed = [r for r in plan.runs if r.status is RunStatus.MISSED]
    assert len(missed) == 101
    assert [(r.scheduled_for_us - T0) // S for r in missed[-2:]] == [990, 1000]
    assert (missed[-1].error or "").endswith(
        "; so were the fires from here up to 2026-01-02T03:46:40+00:00 (not included), "
        "recorded as this one row"
    )
    assert plan.next_fire_us is not None
    assert T0 + 100_000 * S - 5 * S <= plan.next_fire_us <= T0 + 100_010 * S


def test_jitter_delays_the_due_time_but_not_the_nominal_fire() -> None:
    planner = Planner(uniform=lambda low, high: high)
    spec = {"trigger": {"type": "interval", "seconds": 10, "jitter": 3}}
    plan = planner.plan_due(job(**spec), T0, Slots(0, 0, 10))
    assert plan.next_fire_us == T0 + 10 * S
    assert plan.next_run_us == T0 + 13 * S


def test_date_trigger_fires_once_then_has_no_next_fire() -> None:
    spec = {"trigger": {"type": "date", "run_date": "2026-01-01T00:00:00Z"}}
    plan = plan_due(job(**spec), T0 + S, running=0, budget=10)
    assert statuses(plan) == [(0, RunStatus.RUNNING)]
    assert (plan.next_fire_us, plan.next_run_us) == (None, None)


def test_a_job_claimed_ahead_plans_only_its_next_fire_and_never_as_missed() -> None:
    early = plan_due(
        job(misfire_grace_time=0.001, coalesce=False, max_instances=5),
        T0 - 40_000,
        running=0,
        budget=10,
    )
    assert statuses(early) == [(0, RunStatus.RUNNING)]
    assert early.next_fire_us == T0 + 10 * S
    busy = plan_due(job(), T0 - 40_000, running=1, budget=10)
    assert (busy.runs, busy.next_fire_us) == ([], T0)  # decided when due: it may be free then
    no_room = plan_due(job(), T0 - 40_000, running=0, budget=0)
    assert (no_room.runs, no_room.next_fire_us) == ([], T0)


def test_a_backlog_over_max_instances_queues_behind_its_first_fire() -> None:
    plan = plan_due(job(coalesce=False, misfire_grace_time=None), T0 + 25 * S, running=0, budget=10)
    assert statuses(plan) == [
        (0, RunStatus.RUNNING),
        (10, RunStatus.SCHEDULED),
        (20, RunStatus.SCHEDULED),
    ]
    assert plan.next_fire_us == T0 + 30 * S


def test_a_run_in_flight_before_the_fire_skips_it_but_one_started_with_it_queues_it() -> None:
    busy = plan_due(job(), T0, running=1, budget=10, started=0)
    assert statuses(busy) == [(0, RunStatus.SKIPPED)]
    behind = plan_due(job(), T0, running=0, budget=10, started=1)
    assert statuses(behind) == [(0, RunStatus.SCHEDULED)]
    ahead = plan_due(job(), T0 - 40_000, running=0, budget=10, started=1)
    assert (ahead.runs, ahead.next_fire_us) == ([], T0)  # claimed ahead: decided when due


def retry_spec(**retry: Any) -> JobSpec:
    return job(retry={"jitter": 0, **retry}).spec


def waits(spec: JobSpec, attempts: int, **kw: Any) -> list[float | None]:
    """The wait before each next attempt, as the policy sets it, failing at T0 every time."""
    out: list[float | None] = []
    for attempt in range(1, attempts + 1):
        due = retry_due_us(spec, attempt, T0, T0, **kw)
        out.append(None if due is None else (due - T0) / S)
    return out


def test_retries_back_off_exponentially_up_to_max_delay_and_max_attempts() -> None:
    spec = retry_spec(max_attempts=6, initial_delay=1, multiplier=3, max_delay=20)
    assert waits(spec, 6) == [1, 3, 9, 20, 20, None]
    assert waits(retry_spec(max_attempts=1), 1) == [None]
    assert retry_due_us(job().spec, 1, T0, T0) is None  # no policy: no retry


def test_jitter_moves_each_wait_within_its_fraction_and_never_past_max_delay() -> None:
    spec = job(retry={"initial_delay": 10, "max_delay": 10.5, "jitter": 0.2}).spec
    assert waits(spec, 1, uniform=lambda low, high: low) == [8.0]
    assert waits(spec, 1, uniform=lambda low, high: high) == [10.5]


def test_retry_after_can_lengthen_a_wait_but_not_shorten_it() -> None:
    spec = retry_spec(initial_delay=5)
    assert waits(spec, 1, retry_after_s=30) == [30]
    assert waits(spec, 1, retry_after_s=1) == [5]


def test_no_retry_is_queued_past_the_fires_deadline() -> None:
    spec = job(retry={"jitter": 0, "initial_delay": 4, "max_attempts": 9}, deadline=10).spec
    assert waits(spec, 3) == [4, 8, None]  # the third wait would end at 16 s
    assert time_left_s(spec, T0, T0 + 3 * S) == 7
    assert time_left_s(job().spec, T0, T0) is None


def test_a_job_the_breaker_paused_fires_only_its_probe() -> None:
    probe = plan_due(job(paused=True), T0 + 1, running=0, budget=10)
    assert statuses(probe) == [(0, RunStatus.RUNNING)]
    assert (probe.next_fire_us, probe.next_run_us) == (None, None)  # until the probe's verdict
    busy = plan_due(job(paused=True), T0 + 1, running=1, budget=10)
    assert statuses(busy) == [(0, RunStatus.SCHEDULED)]


def queued(due_us: int = T0, *, manual: bool = False) -> QueuedRun:
    return QueuedRun(7, T0, due_us, 2, manual)


def test_a_queued_run_is_judged_by_the_same_grace_and_slots_as_a_due_fire() -> None:
    late = Planner().admit_queued(queued(), job(misfire_grace_time=5), T0 + 6 * S, Slots(0, 0, 9))
    assert (late.status, late.error) == (
        RunStatus.MISSED,
        "fire was 6.000 s late, more than misfire_grace_time (5 s)",
    )
    on_time = Planner().admit_queued(
        queued(), job(misfire_grace_time=5), T0 + 5 * S, Slots(0, 0, 9)
    )
    assert on_time.status is RunStatus.RUNNING
    manual = Planner().admit_queued(
        queued(manual=True), job(misfire_grace_time=5), T0 + 60 * S, Slots(0, 0, 9)
    )
    assert manual.status is RunStatus.RUNNING  # asked for by hand: never too late


def test_a_queued_run_over_max_instances_waits_instead_of_being_skipped() -> None:
    spec = {"max_instances": 2}
    for slots in (Slots(2, 0, 9), Slots(1, 1, 9), Slots(0, 2, 9), Slots(0, 0, 0)):
        waits_for_slot = Planner().admit_queued(queued(), job(**spec), T0, slots)
        assert (waits_for_slot.status, waits_for_slot.error) == (RunStatus.SCHEDULED, None)
    assert Planner().admit_queued(queued(), job(**spec), T0, Slots(1, 0, 9)).status is (
        RunStatus.RUNNING
    )


def test_a_job_whose_next_fire_cannot_be_computed_is_planned_to_pause() -> None:
    # Due now, its fire in the calendar's last minute: the one after it is past the calendar
    # (only a job stored before trigger dates were range checked can be so).
    last_minute = to_us(datetime(9999, 12, 31, 23, 59, tzinfo=UTC))
    edge = job(last_minute, T0, trigger={"type": "cron", "expression": "* * * * *"})
    plan = Planner().plan_due(edge, T0, Slots(0, 0, 10))
    assert (plan.runs, plan.next_fire_us, plan.next_run_us) == ([], None, None)
    assert (plan.pause_reason or "").startswith("paused: its next fire cannot be computed (")
