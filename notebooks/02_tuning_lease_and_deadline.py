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
# # 2. Tuning L, I and D
#
# The elector is safe at a hand-over if the old leader stops before the new one starts.
# The old leader stops at most I + D after its last good renewal (plus the reply delay
# δ, the time C its work takes to stop, any pause P, and clock-rate error ρ); a follower
# takes over no earlier than L after it. To first order:
#
# $$\delta + C + P + \rho\,(L + I + D) \;<\; S = L - I - D$$
#
# S is the **slack**. The reference defaults (10/2/8) have S = 0, which leadersim accepts
# with a `SafetyWarning`. This notebook measures the safe region in the simulator, draws
# the theory's boundary over it, and turns a budget of pauses and latency into a config.

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from matplotlib_inline.backend_inline import set_matplotlib_formats

from leadersim import Config, SafetyWarning, resolve_scenario, simulate, sweep
from leadersim.analysis import plots, theory

# Figures are shown as PNG by show(), whichever matplotlib backend is active: Jupyter's
# inline one, or the Agg that CI selects through MPLBACKEND.
set_matplotlib_formats("png")


def show(ax):
    """Display the figure an Axes belongs to, once."""
    display(ax.figure)
    plt.close(ax.figure)


# %% [markdown]
# ## The theory, in numbers

# %%
print("slack of 10/2/8:", theory.slack(10, 2, 8), "s")
print("slack of 15/2/8:", theory.slack(15, 2, 8), "s")
print("safe with a 0.5-s stop at 10/2/8?", bool(theory.is_safe(10, 2, 8, stop_latency=0.5)))
print("safe with a 0.5-s stop at 13/2/8?", bool(theory.is_safe(13, 2, 8, stop_latency=0.5)))
assert theory.slack(10, 2, 8) == 0
assert theory.slack(15, 2, 8) == 5
assert not theory.is_safe(10, 2, 8, stop_latency=0.5)
assert theory.is_safe(13, 2, 8, stop_latency=0.5)

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    Config("n1", storage=object(), leader_callback=print).adjust_and_validate()
print("warning:", caught[0].message)
assert [w.category for w in caught] == [SafetyWarning]

# %% [markdown]
# ## The measurement: lease × deadline × interval, under latency and pauses
#
# We start from `zero-slack-defaults` (replies have a rare heavy tail: 1 % of writes
# take 0.5-2 s; the work takes C = 0.5 s to stop) and give it two hand-overs: at
# t = 60 and 180 the leader loses the storage for 20 s, and at the same moment it
# freezes for P = 2 s (a GC pause in its stop path). We sweep L, D and I, two seeds per
# cell (kept small so the notebook is quick; the sweep runs on a process pool). A cell's
# **split brain** is the mean time two callbacks ran at once.

# %%
PAUSE, STOP, REPLY = 2.0, 0.5, 0.01  # P, C and the typical reply delay δ (s)
handovers = []
HANDOVER_AT = (60.0, 180.0)
for at in HANDOVER_AT:
    handovers.append({"at": at, "kind": "cut", "target": "leader", "duration": 20})
    # "fault:K" targets whichever node fault K hit: the pause falls on the cut leader.
    handovers.append(
        {"at": at, "kind": "pause", "target": f"fault:{len(handovers) - 1}", "duration": PAUSE}
    )
spec = resolve_scenario("zero-slack-defaults").to_mapping()
spec.update(name="two hand-overs", duration=240.0, faults=handovers)
spec["callback"]["stop_latency"] = STOP

leases, deadlines, intervals = [10, 12, 14, 16], [4, 6, 8, 10], [1.0, 2.0]
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SafetyWarning)  # some cells have zero slack, on purpose
    df = sweep(
        spec,
        {
            "config.lease_duration": leases,
            "config.renew_deadline": deadlines,
            "config.renew_interval": intervals,
        },
        seeds=2,
        progress=False,  # no progress bar in a saved notebook
        invalid="record",  # D >= L - I is invalid: kept as an empty cell
    )
valid = df[df["error"].isna()].copy()
print(f"{len(valid)} runs; {df['error'].notna().sum()} invalid rows (D too close to L - I)")

# %% [markdown]
# Heatmaps, one row per renew interval: the split brain (left) and the failover time
# (right), with the theory's boundary for δ + C + P = 2.51 s: safe *below* the line.

# %%
fig, axes = plt.subplots(len(intervals), 2, figsize=(12, 4.6 * len(intervals)))
for row, interval in zip(axes, intervals, strict=True):
    cells = valid[valid["config.renew_interval"] == interval]

    def boundary(lease, interval=interval):
        return theory.boundary_deadline(
            lease, interval, delta_resp=REPLY, stop_latency=STOP, pause=PAUSE
        )

    plots.plot_sweep_heatmap(
        cells, "config.lease_duration", "config.renew_deadline", "overlap_s", boundary, ax=row[0]
    )
    row[0].set_title(f"I = {interval:g} s: split brain (s, mean of seeds)")
    plots.plot_sweep_heatmap(
        cells,
        "config.lease_duration",
        "config.renew_deadline",
        "failover_s",
        boundary,
        ax=row[1],
        cmap="Blues",
    )
    row[1].set_title(f"I = {interval:g} s: failover time (s)")
fig.tight_layout()
show(axes[0][0])

# %% [markdown]
# Below the line the theory promises safety and every run agrees. Above it, the bound
# is a worst case (a reply as slow as the tail, a pause at the worst instant), so some
# cells just past the line got lucky. The failover time does not care about D at all:
# it is about L, the price of slack.

# %%
cells = valid.groupby(["config.renew_interval", "config.lease_duration", "config.renew_deadline"])
worst = cells["overlap_s"].max()
I_ = worst.index.get_level_values(0).to_numpy(float)
L_ = worst.index.get_level_values(1).to_numpy(float)
D_ = worst.index.get_level_values(2).to_numpy(float)
margin = theory.margin(L_, I_, D_, delta_resp=REPLY, stop_latency=STOP, pause=PAUSE)
measured_unsafe = worst.to_numpy() > 0
print(
    f"cells predicted safe: {np.sum(margin > 0)}, of which unsafe in a run: "
    f"{np.sum(measured_unsafe & (margin > 0))}"
)
print(
    f"cells predicted unsafe: {np.sum(margin <= 0)}, of which unsafe in a run: "
    f"{np.sum(measured_unsafe & (margin <= 0))}"
)
# The theory's promise: a positive margin is safe in every seed.
assert not measured_unsafe[margin > 0].any()
# And where the margin is gone entirely (S <= 0: no slack at all for C + P), every cell
# saw a split brain.
assert measured_unsafe[theory.slack(L_, I_, D_) <= 0].all()
# The overlap never exceeds what the bound allows, plus the reply tail (2 s at most).
assert (
    worst.to_numpy()
    <= theory.worst_overlap(L_, I_, D_, delta_resp=REPLY, stop_latency=STOP, pause=PAUSE) + 2.0
).all()
failover = cells["failover_s"].mean()
# Failover after losing the leader is L ± I whatever D is (theory.failover_time "storage").
low, _, high = theory.failover_time("storage", L_, I_)
assert ((failover.to_numpy() >= low) & (failover.to_numpy() <= high)).all()

# %% [markdown]
# ## What 10/2/8 leaves
#
# With the reference defaults the slack is zero, so *any* stop time, pause or slow reply
# is an overlap at a hand-over. The theory says the worst one here is δ + C + P:

# %%
at_defaults = valid[
    (valid["config.lease_duration"] == 10)
    & (valid["config.renew_deadline"] == 8)
    & (valid["config.renew_interval"] == 2.0)
]
bound = theory.worst_overlap(10, 2, 8, delta_resp=REPLY, stop_latency=STOP, pause=PAUSE)
print(f"10/2/8: worst split brain allowed by the bound {bound:.2f} s per hand-over")
print("measured per run:", at_defaults["overlap_s"].round(2).tolist(), "s over 2 hand-overs")
print("stale writes accepted:", at_defaults["stale_accepted"].tolist())
assert (at_defaults["overlap_s"] > 0).all()
# At most the bound plus the reply tail (2 s) at each hand-over.
assert (at_defaults["overlap_s"] <= len(HANDOVER_AT) * (bound + 2.0)).all()

# %% [markdown]
# ## From a budget to a config
#
# Say your process may pause for up to **P = 3 s** (GC), replies take δ = 10 ms, and the
# work stops within C = 0.1 s; you keep the defaults' I = 2 and D = 8. The boundary
# gives the smallest safe lease; round it up:

# %%
budget = {"delta_resp": 0.01, "stop_latency": 0.1, "pause": 3.0}
needed = theory.boundary_lease(8, 2, **budget)
chosen = int(np.ceil(needed + 0.5))
print(f"L must exceed {needed:.2f} s; pick L = {chosen} s (slack {theory.slack(chosen, 2, 8)} s)")
assert chosen == 14
assert theory.is_safe(chosen, 2, 8, **budget)
assert not theory.is_safe(10, 2, 8, **budget)

# %% [markdown]
# Check it in the simulator: `leader-pause-shorter-than-slack[b]` cuts the leader off
# and freezes it for 3 s at the same time, the budget's worst case:

# %%
checks = {}
warnings.simplefilter("ignore", SafetyWarning)  # 10/2/8 warns: we know, it is the point
for lease in (10, chosen):
    runs = [
        simulate(
            "leader-pause-shorter-than-slack[b]", seed=seed, **{"config.lease_duration": lease}
        ).summary()
        for seed in range(5)
    ]
    checks[lease] = [run["overlap_s"] for run in runs]
    print(f"L = {lease:>2} s: split brain per seed {[round(o, 2) for o in checks[lease]]}")
assert all(o > 0 for o in checks[10])  # the defaults overlap in every seed
assert all(o == 0 for o in checks[chosen])  # the chosen lease never does

# %% [markdown]
# ## Explore
#
# `handover(...)` draws one hand-over in the worst case the theory allows: the old
# leader's last renewal at t = 0, when it stops acting at the latest, and when a
# follower may start at the earliest. Below are two static renderings (the defaults and
# the budget above); in a live Jupyter the sliders further down redraw it.


# %%
def handover(lease=10.0, interval=2.0, deadline=8.0, reply=0.01, stop=0.1, pause=3.0):
    """Draw the worst-case hand-over for one config and fault budget (seconds)."""
    stops = interval + deadline + reply + stop + pause
    starts = lease
    m = theory.margin(lease, interval, deadline, delta_resp=reply, stop_latency=stop, pause=pause)
    fig, ax = plt.subplots(figsize=(9, 2.2))
    ax.barh(1, interval + deadline, color="tab:blue", label="renew rounds (I + D)")
    ax.barh(
        1,
        reply + stop + pause,
        left=interval + deadline,
        color="tab:orange",
        label="reply + stop + pause",
    )
    ax.barh(
        0, max(stops, starts) + 2 - starts, left=starts, color="tab:green", label="new leader acts"
    )
    if m < 0:
        ax.axvspan(starts, stops, color="red", alpha=0.2, label=f"split brain {-m:.2f} s")
    ax.axvline(lease, color="k", lw=0.8, ls="--")
    ax.set_yticks([0, 1], ["follower", "old leader"])
    ax.set_xlabel("seconds after the old leader's last renewal")
    verdict = "safe" if m > 0 else "UNSAFE"
    ax.set_title(f"L/I/D = {lease:g}/{interval:g}/{deadline:g}: margin {m:+.2f} s ({verdict})")
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    fig.tight_layout()
    display(fig)
    plt.close(fig)
    return m


assert handover(10, 2, 8) < 0
assert handover(chosen, 2, 8) > 0

# %%
try:
    from ipywidgets import FloatSlider, interact
except ImportError:  # the static renderings above are the fallback
    print("ipywidgets is not installed: the sliders are unavailable")
else:
    interact(
        handover,
        lease=FloatSlider(value=10, min=2, max=60, step=1),
        interval=FloatSlider(value=2, min=0.5, max=10, step=0.5),
        deadline=FloatSlider(value=8, min=1, max=50, step=1),
        reply=FloatSlider(value=0.01, min=0, max=2, step=0.01),
        stop=FloatSlider(value=0.1, min=0, max=10, step=0.1),
        pause=FloatSlider(value=3, min=0, max=60, step=0.5),
    )

# %% [markdown]
# **Takeaways.** Pick D first (how long a leader may ride out a storage hiccup), then
# L ≥ I + D + (reply delay + stop time + the pauses you can bound) — and fence the
# resource for the pauses you cannot (notebook 4). Failover after losing a leader costs
# about L, so slack is paid for in availability.
