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
# # Why did two nodes both think they were leader?
#
# A lease-based elector keeps one shared record — who leads, and when each member last
# renewed. A leader renews every `renew_interval` (I); if a renew round keeps failing for
# `renew_deadline` (D), it stops its work. A follower waits `lease_duration` (L) on *its
# own* clock after it last saw the leader renew, then takes the slot.
#
# That is safe only if the old leader stops before the new one starts. This notebook runs
# the **real elector** (the same class you would deploy on SQLite or PostgreSQL) inside
# the simulator, freezes the leader for 20 s — a stop-the-world GC pause — and looks at
# what happens.

# %%
import warnings

import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib_inline.backend_inline import set_matplotlib_formats

from leadersim import SafetyWarning, simulate
from leadersim.analysis import theory

warnings.simplefilter("ignore", SafetyWarning)  # the reference defaults have zero slack
# Figures are shown as PNG by show(), whichever matplotlib backend is active: Jupyter's
# inline one, or the Agg that CI selects through MPLBACKEND.
set_matplotlib_formats("png")


def show(ax):
    """Display the figure an Axes belongs to, once."""
    display(ax.figure)
    plt.close(ax.figure)


# %% [markdown]
# ## The run
#
# `leader-pause-longer-than-lease` is a catalogue scenario: three members with the
# reference defaults (L = 10 s, I = 2 s, D = 8 s), 5 ms storage latency, and a leader
# whose work checks `is_leader()`, prepares for 1 s, then writes to a protected resource.
# At t = 60 s the leader is paused for 20 s. One seed reproduces the run exactly.

# %%
PAUSE_AT, PAUSE_S, LEASE, INTERVAL, STOP_S = 60.0, 20.0, 10.0, 2.0, 0.1
result = simulate("leader-pause-longer-than-lease", seed=3)
result

# %% [markdown]
# The card says **UNSAFE**: for about ten seconds two callbacks ran at once. The timeline
# shows why. Thick bars: a node's callback runs (it *acts* as leader); thin bars: its
# `is_leader()` is true (it *believes* it leads); the red band is the split brain; the
# hatched span is the pause; the bottom lane is the leader named in storage.

# %%
ax = result.plot_timeline()
ax.set_xlim(40, 100)
show(ax)

# %% [markdown]
# Read it left to right:
#
# 1. At t = 60 the leader freezes mid-preparation. It cannot renew, but nothing tells it.
# 2. A follower last saw it renew just before 60, waits a full lease on its own clock,
#    and takes over about L = 10 s later.
# 3. At t = 80 the old leader wakes up. Its callback is still running — the elector only
#    stops it when a renew round says so — so its pending write goes out **first**.
# 4. Only then does its renew round read the record, see another leader, and cancel it.
#
# The split-brain window, with the fault active during it:

# %%
windows = result.windows()
windows

# %% [markdown]
# The theory predicts both numbers. A follower takes over one lease (± one renew
# interval: the renewal it last saw is up to a round old) after the pause began; the two
# callbacks then overlap from that take-over until the old leader wakes and stops, so the
# split brain lasts the pause minus the take-over time, plus the old leader's stop —
# about P − L. The cell checks the run against it:

# %%
failover = result.failovers()["failover_s"].iloc[0]
low, _, high = theory.failover_time("pause", LEASE, INTERVAL)
overlap = result.summary()["overlap_s"]
print(f"take-over {failover:.2f} s after the pause began (theory: {low:g} to {high:g} s)")
print(f"split brain {overlap:.2f} s; P - take-over = {PAUSE_S - failover:.2f} s")
assert low <= failover <= high
assert len(windows) == 1
assert windows["faults"].iloc[0] == "pause@n1"
# The old leader's stop after waking (its renew round, then C) is under a second.
assert 0 < overlap - (PAUSE_S - failover) < STOP_S + 1.0

# %% [markdown]
# `belief` overlap is zero: on waking, `is_leader()` already says no (its own lease ran
# out on its own clock) — but the work never asked again before writing. The stale
# write was accepted:

# %%
writes = result.writes()
assert result.summary()["belief_overlap_s"] == 0
assert result.summary()["stale_accepted"] == 1
writes[writes["class"] != "ok"]

# %% [markdown]
# ## More lease does not fix it
#
# With L = 15 s the take-over comes later, so the overlap shrinks by 5 s. Only a lease
# longer than the pause plus a renew interval (L = 25 s) rides it out here — but a pause
# has no upper bound, so some pause is always longer than any lease.

# %%
overlaps = {}
for lease in (10, 15, 25):
    summary = simulate(
        "leader-pause-longer-than-lease", seed=3, **{"config.lease_duration": lease}
    ).summary()
    overlaps[lease] = summary["overlap_s"]
    print(
        f"L = {lease:>2} s: overlap {summary['overlap_s']:5.2f} s, "
        f"stale writes accepted {summary['stale_accepted']}"
    )
assert 4 < overlaps[10] - overlaps[15] < 7  # five more seconds of lease, ~5 s less overlap
assert overlaps[25] == 0  # P + I < L: nobody takes over during the pause

# %% [markdown]
# ## Fencing does
#
# With fencing, the resource accepts a write only if the record names the writer as
# leader at that instant (what `txn_with_leader_lock` does in a database). The overlap is
# still there — two callbacks still run — but it is harmless: the stale write is refused.

# %%
fenced = simulate("leader-pause-longer-than-lease", seed=3, fencing=True)
print(fenced.verdict.line())
assert fenced.summary()["overlap_s"] == overlap  # the same run: fencing changes no timing
assert fenced.summary()["stale_accepted"] == 0
assert fenced.summary()["stale_rejected"] == 1
fenced.writes().groupby("class").size()

# %% [markdown]
# **Takeaways.** Timing (L − I − D, the *slack*) can only make an overlap unlikely; a
# process pause, a slow callback stop or a late reply eats it. Make the protected
# resource check leadership at write time (fencing), and keep the work from acting on a
# stale `is_leader()`. The next notebook maps the safe region of L, I and D.
