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

import matplotlib

matplotlib.use("Agg")  # the notebook also runs headless in CI
import matplotlib.pyplot as plt

from leadersim import SafetyWarning, simulate

warnings.simplefilter("ignore", SafetyWarning)  # the reference defaults have zero slack

# %% [markdown]
# ## The run
#
# `leader-pause-longer-than-lease` is a catalogue scenario: three members with the
# reference defaults (L = 10 s, I = 2 s, D = 8 s), 5 ms storage latency, and a leader
# whose work checks `is_leader()`, prepares for 1 s, then writes to a protected resource.
# At t = 60 s the leader is paused for 20 s. One seed reproduces the run exactly.

# %%
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
plt.show()

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
result.windows()

# %% [markdown]
# Its length is about P − L: the pause minus the lease. `belief` overlap is zero: on
# waking, `is_leader()` already says no (its own lease ran out on its own clock) — but the
# work never asked again before writing. The stale write was accepted:

# %%
writes = result.writes()
writes[writes["class"] != "ok"]

# %% [markdown]
# ## More lease does not fix it
#
# With L = 15 s the take-over comes later, so the overlap shrinks by 5 s — but a pause has
# no upper bound, so some pause is always longer than any lease.

# %%
for lease in (10, 15, 25):
    summary = simulate(
        "leader-pause-longer-than-lease", seed=3, **{"config.lease_duration": lease}
    ).summary()
    print(
        f"L = {lease:>2} s: overlap {summary['overlap_s']:5.2f} s, "
        f"stale writes accepted {summary['stale_accepted']}"
    )

# %% [markdown]
# ## Fencing does
#
# With fencing, the resource accepts a write only if the record names the writer as
# leader at that instant (what `txn_with_leader_lock` does in a database). The overlap is
# still there — two callbacks still run — but it is harmless: the stale write is refused.

# %%
fenced = simulate("leader-pause-longer-than-lease", seed=3, fencing=True)
print(fenced.verdict.line())
fenced.writes().groupby("class").size()

# %% [markdown]
# **Takeaways.** Timing (L − I − D, the *slack*) can only make an overlap unlikely; a
# process pause, a slow callback stop or a late reply eats it. Make the protected
# resource check leadership at write time (fencing), and keep the work from acting on a
# stale `is_leader()`. The next notebook maps the safe region of L, I and D.
