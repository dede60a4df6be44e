"""Which step, runner and round comes next in a run, and how many rounds each runner gets: forced by
--repeat, or decided by the data (--precision). Parent side: it judges a median's interval
(bench.analysis.stats), which the worker never needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.analysis.stats import interval_pct
from bench.registry import registered, runner_name
from bench.suites import Step, suites

if TYPE_CHECKING:  # for annotations only: run.py builds the schedule
    from bench.run import RunOptions
    from bench.workload import Workload


@dataclass
class Rounds:
    """How many rounds one runner gets for one workload, and why they stopped: --repeat N forces N;
    otherwise rounds are added until every metric's median has its 95% interval within ±precision,
    from min_repeat on, up to max_repeat (pyperf and hyperfine decide by the data too)."""

    warmup: int
    min_repeat: int
    max_repeat: int
    precision: float | None  # None with a forced --repeat
    n: int = 0
    stopped: str = ""
    widest: float = float("nan")  # the widest interval, ± share of its median, when it stopped
    forced_by: str = "--repeat"  # what fixed the rounds, without a precision
    notes: list[str] = field(default_factory=list)  # what the measurements said of themselves (a fill's limit)

    def done(self, values: dict[str, list[float]], failed: int) -> bool:
        """Called after each measured round with the runner's values so far, per metric."""
        if self.n < self.min_repeat:
            return False
        widths = [interval_pct(v) for v in values.values() if v]
        self.widest = max(widths, default=float("nan"))
        if self.precision is None:
            self.stopped = f"{self.forced_by} {self.n}"
        elif not widths and failed:
            self.stopped = f"every sample failed in {self.n} rounds"
        elif self.widest <= self.precision:
            self.stopped = f"precision reached: every median within ±{self.widest:.1%} (95%)"
        elif self.n >= self.max_repeat:
            self.stopped = f"max-repeat {self.max_repeat} reached, widest interval ±{self.widest:.1%}"
        return bool(self.stopped)

    def as_meta(self) -> dict:
        return {"n": self.n, "warmup": self.warmup, "stopped": self.stopped,
                "widest_interval_pct": None if self.widest != self.widest else round(100 * self.widest, 2),
                **({"notes": self.notes} if self.notes else {})}


def rounds(workload: Workload, runner: str, opts: RunOptions) -> Rounds:
    defaults = suites()[workload.suite].defaults()
    warmup = opts.warmup if opts.warmup is not None else defaults["warmup"]
    if opts.repeat is not None:
        return Rounds(warmup, opts.repeat, opts.repeat, None)
    if workload.repeat is not None:
        return Rounds(warmup, workload.repeat, workload.repeat, None, forced_by="the workload's own rounds:")
    limit = opts.max_repeat or min(defaults["max_repeat"], registered()[runner_name(runner)].loaded.max_repeat)
    return Rounds(warmup, min(defaults["min_repeat"], limit), limit, opts.precision)


def round_order(names: list[str], rnd: int) -> list[str]:
    """The round's order: as given, then reversed, alternately (ABBA), so that each runner follows
    each other as often as it precedes it. A VM started right after another VM's teardown ran 10 to
    30% slower here (the host still frees the last guest's memory), which a fixed order charged to
    one runner alone."""
    return list(names) if rnd % 2 == 0 else names[::-1]


@dataclass(frozen=True)
class Turn:
    """One measurement to make: a runner's round of a step (negative: a warm-up round)."""

    step: Step
    runner: str
    round: int
    rounds: Rounds


class Schedule:
    """Round-robin over the runners of each step still measuring, the order reversed every other
    round (round_order), so that drift on the host hits them alike; a runner leaves once its Rounds
    are done. total is the most turns left to run, for a progress bar: it shrinks when a runner
    leaves early."""

    def __init__(self, plan: list[Step], opts: RunOptions) -> None:
        self.todo = [(step, {name: rounds(step.workload, name, opts) for name in step.runners}) for step in plan]
        self.total = sum(r.warmup + r.max_repeat for _, plans in self.todo for r in plans.values())
        self.begun: list[str] = []  # the steps measured so far, or being measured

    def turns(self, so_far: Callable[[str, str], tuple[dict[str, list[float]], int]]) -> Iterator[Turn]:
        """so_far(label, runner): the values and failures recorded so far, which decide when it stops."""
        for step, plans in self.todo:
            self.begun.append(step.label)
            active = list(plans)
            rnd = -max(r.warmup for r in plans.values())
            while active:
                for name in round_order(active, rnd):
                    if rnd >= -plans[name].warmup:
                        yield Turn(step, name, rnd, plans[name])
                rnd += 1
                for name in [a for a in active if rnd > 0 and plans[a].done(*so_far(step.label, a))]:
                    active.remove(name)
                    self.total -= plans[name].max_repeat - plans[name].n

    def as_meta(self) -> dict:
        """meta.json's rounds: per step begun, per runner, how many and why they stopped."""
        return {step.label: {name: r.as_meta() for name, r in plans.items()} for step, plans in self.todo
                if step.label in self.begun}
