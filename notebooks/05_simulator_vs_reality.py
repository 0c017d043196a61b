# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Simulator vs reality
#
# Everything so far leaned on the simulator. Is it right? `leadersim.compare` runs one
# scenario both ways: in the **lab** (one OS process per member on a real SQLite file,
# faults inflicted by signals) and in the **simulator**, with the same config and fault
# schedule. Before simulating, it fits the simulator's storage latency to the storage
# operations the lab members traced, so the two worlds differ only where the model does.
#
# Catalogue scenarios are written in tens of seconds; `scale=0.05` runs them twenty
# times faster (L/I/D = 0.5/0.1/0.4 s), so each real run takes 6 s. Three runs per world
# (a median that one run slowed by a busy host does not move) keep the notebook short;
# the test suite's calibration tests use five at scale 0.2.

# %%
import warnings

import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib_inline.backend_inline import set_matplotlib_formats

from leadersim import SafetyWarning, compare
from leadersim.analysis import theory

warnings.simplefilter("ignore", SafetyWarning)  # the scaled defaults keep zero slack
# Figures are shown as PNG by show(), whichever matplotlib backend is active: Jupyter's
# inline one, or the Agg that CI selects through MPLBACKEND.
set_matplotlib_formats("png")


def show(ax):
    """Display the figure an Axes belongs to, once."""
    display(ax.figure)
    plt.close(ax.figure)


SCALE, RUNS = 0.05, 3
LEASE, INTERVAL = 10 * SCALE, 2 * SCALE

# %% [markdown]
# ## A crash, both ways
#
# `leader-crash`: the leader is killed at t = 3 s (`SIGKILL` in the lab).

# %%
crash = compare("leader-crash", runs=RUNS, scale=SCALE, duration=6)
print(crash.table())

# %% [markdown]
# The fitted latency model: a lognormal one-way delay per operation, read from the round
# trips the lab traced. A local SQLite file answers in a fraction of a millisecond — far
# from the catalogue's 5-ms default, which is why the fit comes first.

# %%
fitted = crash.fitted_latency
print(fitted)
medians = {op: spec["median_s"] for op, spec in fitted["latency_by_op"].items()}
print({op: f"{1000 * m:.3f} ms" for op, m in medians.items()})
# Regression bound: a local SQLite file on this class of machine answers in well under
# 5 ms one way (measured ~0.15 ms for reads and ~0.4 ms for writes).
assert all(0 < m < 0.005 for m in medians.values())
assert medians["update"] > medians["get"]  # a write commits (WAL fsync), a read does not

# %% [markdown]
# The storage operations of one lab run and of the simulated run fitted to them:

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4), sharey=True)
crash.lab_results[0].plot_latency(ax=left)
left.set_title("lab run (real SQLite)")
crash.sim_results[0].plot_latency(ax=right)
right.set_title("simulator, fitted latency")
fig.tight_layout()
show(left)

# %% [markdown]
# And the two timelines, one above the other:

# %%
fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5.5))
crash.lab_results[0].plot_timeline(ax=top, start=1.5, end=5)
crash.sim_results[0].plot_timeline(ax=bottom, start=1.5, end=5)
fig.tight_layout()
show(top)

# %% [markdown]
# The failover is a lease, give or take a round, in both worlds, and the two agree
# within about ten per cent:

# %%
lab, sim = crash.lab.to_dict(), crash.sim.to_dict()
low, _, high = theory.failover_time("crash", LEASE, INTERVAL)
print(
    f"failover: lab {lab['failover_median_s']:.3f} s, sim {sim['failover_median_s']:.3f} s "
    f"(theory {low:g} to {high:g} s)"
)
difference = crash.relative_difference("failover_median_s")
print(f"simulator vs lab: {difference:+.1%}")
assert lab["overlap_max_s"] == sim["overlap_max_s"] == 0
assert low <= sim["failover_median_s"] <= high
# Regression bound: real followers' rounds start late by the host's scheduling delay,
# so the lab gets 0.2 s of headroom at the top (the lower end is firm).
assert low - 0.02 <= lab["failover_median_s"] <= high + 0.2
# Regression bound: measured -4 % to -7 % (two runs each, the simulator faster: the
# lab's scheduling delay); the calibration tests hold 5 % over five runs at scale 0.2,
# where that delay weighs less against the lease. 25 % leaves room for a loaded host.
assert abs(difference) <= 0.25, crash.table()

# %% [markdown]
# ## A pause longer than the lease, both ways
#
# `leader-pause-longer-than-lease`: the leader is frozen at t = 3 s for 1 s (`SIGSTOP`
# and `SIGCONT` in the lab). A follower takes over after a lease; when the old leader
# wakes, its callback acts beside its successor until its renew round stops it.

# %%
pause = compare("leader-pause-longer-than-lease", runs=RUNS, scale=SCALE, duration=6)
print(pause.table())
fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5.5))
pause.lab_results[0].plot_timeline(ax=top, start=2, end=5)
pause.sim_results[0].plot_timeline(ax=bottom, start=2, end=5)
fig.tight_layout()
show(top)

# %%
lab, sim = pause.lab.to_dict(), pause.sim.to_dict()
overlap_difference = pause.relative_difference("overlap_median_s")
print(
    f"overlap: lab {lab['overlap_median_s']:.3f} s, sim {sim['overlap_median_s']:.3f} s "
    f"({overlap_difference:+.1%})"
)
# Theory: the overlap is the pause minus the take-over (about L) plus the old leader's
# stop: about P - L = 0.5 s here, in each world.
assert 0.3 <= sim["overlap_min_s"] <= 0.8
assert 0.3 <= lab["overlap_median_s"] <= 0.8
# Regression bound: measured -7 % to +9 % (two runs each); the calibration tests
# hold 10 % over five runs at scale 0.1. 25 % leaves room for a loaded host.
assert abs(overlap_difference) <= 0.25, pause.table()

# %% [markdown]
# ## What still differs, and why
#
# - **Scheduling.** A real member's renew round starts when the OS gets round to it, a
#   few milliseconds late on a busy machine — more with six processes on two cores. The
#   simulator has no CPU: rounds start on time. So the lab's failovers come a little
#   later; the gap shrinks as L grows (5-10 % at L = 0.5 s here, within the
#   calibration tests' 5 % at L = 2 s).
# - **The latency model.** The fit sees round trips only and splits them into two equal
#   one-way delays, lognormal per operation. The real distribution has a heavier tail
#   (fsyncs, page-cache misses) that a lognormal fits only roughly; the simulator's
#   tails are a model, the lab's are the machine's.
# - **Who goes first on waking.** A stale write happens only if the pause caught the
#   work between its `is_leader()` check and its write; on waking, that pending write
#   and the renew round race. In the simulator the race is settled by the event queue
#   (seeded: where the pause falls in the work's cycle); in the lab the OS scheduler
#   adds its own jitter. Either way a woken leader gets out at most the one write it
#   had pending: its round stops it long before the next one is due.

# %%
print("stale writes per run: lab", pause.lab.stale_writes, "sim", pause.sim.stale_writes)
# Theory: the next write is a whole work cycle (0.05 s of preparation here) after the
# pending one, and the woken leader's renew round stops it within a round trip.
assert all(n <= 1 for n in pause.sim.stale_writes)
assert all(n <= 1 for n in pause.lab.stale_writes)

# %% [markdown]
# **Takeaways.** With the latency fitted, the simulator reproduces the lab's failover
# and overlap within about ten per cent at these short timings; what it does not model
# is the host's scheduler. Keep that in mind when you read its results for a busy
# machine: add the scheduling delay you see to δ in the safety budget of notebook 2.
