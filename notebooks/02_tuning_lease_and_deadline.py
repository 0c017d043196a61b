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
# # What should `lease_duration` and `renew_deadline` be?
#
# The elector is safe at a hand-over if the old leader stops before the new one starts.
# The old leader stops at most I + D after its last good renewal (plus the reply delay
# δ, the time C its work takes to stop, any pause P, and clock-rate error ρ); a follower
# takes over no earlier than L after it. To first order:
#
# $$\delta + C + P + \rho\,(L + I + D) \;<\; S = L - I - D$$
#
# S is the **slack**. The reference defaults (10/2/8) have S = 0, which leadersim accepts
# with a `SafetyWarning`. This notebook measures the safe region in the simulator and
# draws the theory's boundary over it.

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from matplotlib_inline.backend_inline import set_matplotlib_formats

from leadersim import Config, SafetyWarning, sweep
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
# ## The measurement
#
# `zero-slack-defaults` cuts the leader off from storage for 20 s every two minutes, so
# each run has several hand-overs; replies have a rare heavy tail. We give the work a
# 3-s stop latency (C) and sweep the lease and the deadline, 3 seeds per cell. A cell is
# *unsafe* if any seed had two callbacks running at once. (Runs are kept short here; the
# sweep runs in parallel on a process pool.)

# %%
leases = [10, 12, 14, 16, 18, 20]
deadlines = [4, 6, 8, 10, 12, 14]
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SafetyWarning)
    df = sweep(
        "zero-slack-defaults",
        {
            "duration": 600.0,
            "callback.stop_latency": 3.0,
            "config.lease_duration": leases,
            "config.renew_deadline": deadlines,
        },
        seeds=3,
        progress=False,
        invalid="record",  # D > L - I is invalid: keep it as an empty cell
    )
df.head()

# %%
valid = df[df["error"].isna()].copy()
valid["unsafe"] = valid["overlap_s"] > 0


def boundary(lease):
    return theory.boundary_deadline(lease, 2.0, delta_resp=0.01, stop_latency=3.0)


ax = plots.plot_sweep_heatmap(
    valid, "config.lease_duration", "config.renew_deadline", "unsafe", boundary, agg="max"
)
ax.set_title("split brain in any seed (1) or none (0); line: theory")
show(ax)

# %% [markdown]
# Below the line the theory promises safety, and the runs agree; above it every cell
# saw an overlap. How well do they agree, cell by cell?

# %%
cells = valid.groupby(["config.lease_duration", "config.renew_deadline"])["unsafe"].any()
L = cells.index.get_level_values(0).to_numpy(float)
D = cells.index.get_level_values(1).to_numpy(float)
predicted_unsafe = ~theory.is_safe(L, 2.0, D, delta_resp=0.01, stop_latency=3.0)
agreement = np.mean(predicted_unsafe == cells.to_numpy())
print(f"{agreement:.0%} of {len(cells)} cells agree")
# Every cell the theory calls safe was safe in every seed: the bound is a worst case.
assert not cells.to_numpy()[~predicted_unsafe].any()
assert agreement == 1.0  # and every cell it calls unsafe saw an overlap

# %% [markdown]
# **Takeaways.** Pick D first (how long a leader may ride out a storage hiccup), then
# L ≥ I + D + (reply delay + stop time + the pauses you can bound) — and fence the
# resource for the pauses you cannot. Failover after a crash costs about L, so slack is
# paid for in availability.
