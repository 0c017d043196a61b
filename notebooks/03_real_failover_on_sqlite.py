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
# # A real failover: three processes, one SQLite file, one SIGKILL
#
# The simulator runs the same elector class as production. Here it runs for real: three
# member **OS processes** on one SQLite file (WAL mode), each writing its trace as JSON
# lines. We kill the leader with `SIGKILL` — no release, no goodbye — and read the
# traces with the same analysis the simulator uses.

# %%
import signal
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib_inline.backend_inline import set_matplotlib_formats

from leadersim import Result
from leadersim.analysis import theory
from leadersim.lab import Lab
from leadersim.trace import EventKind

# Figures are shown as PNG by show(), whichever matplotlib backend is active: Jupyter's
# inline one, or the Agg that CI selects through MPLBACKEND.
set_matplotlib_formats("png")


def show(ax):
    """Display the figure an Axes belongs to, once."""
    display(ax.figure)
    plt.close(ax.figure)


workdir = Path(tempfile.mkdtemp(prefix="leadersim-lab-"))
lease, interval = 1.0, 0.1  # short, so the notebook is quick

# %% [markdown]
# Start the members and wait for a leader:

# %%
with Lab(
    workdir / "election.db",
    ["n1", "n2", "n3"],
    lease_duration=lease,
    renew_interval=interval,
    renew_deadline=0.5,
) as lab:
    lab.start()
    first = lab.wait_for_event(EventKind.CALLBACK_STARTED, timeout=20)
    print(f"{first.node} leads")
    lab.wait_for_event(
        EventKind.RENEW_OK, nodes=[first.node], after=first.true_time + 1.0, timeout=10
    )
    killed_at = lab.kill(first.node, signal.SIGKILL)
    successor = lab.wait_for_event(
        EventKind.CALLBACK_STARTED,
        nodes=[n for n in lab.node_ids if n != first.node],
        after=killed_at,
        timeout=20,
    )
    failover = successor.true_time - killed_at
    print(f"{successor.node} leads {failover:.2f} s after the kill")
    lab.stop_all()
    integrity = lab.integrity_check()
    print("integrity:", integrity)
    trace = lab.read_trace()
assert integrity == "ok"

# %% [markdown]
# The successor could not take over at once: it had seen the leader renew moments
# before, and a lease is a promise to wait a full L on the follower's own clock. The
# traces of the three processes, merged on the host's monotonic clock, give the same
# verdict and timeline as a simulated run:

# %%
result = Result(trace, name="real SQLite failover")
assert result.summary()["overlap_s"] == 0  # never two leaders, on real processes either
result

# %%
ax = result.plot_timeline()
show(ax)

# %%
failovers = result.failovers()
failovers

# %% [markdown]
# The failover took about one lease — the cost of a crash without a release. The theory
# says L ± I: the renewal the followers last saw is up to one round old.

# %%
low, _, high = theory.failover_time("crash", lease, interval)
print(f"measured {failover:.2f} s; theory {low:g} to {high:g} s")
# Regression bound: real processes on a busy machine add scheduling delay to the
# follower's rounds, so the upper end gets a second of headroom; the lower end is firm
# (a follower never takes over before a lease, less one round, after the last renewal).
assert low - 0.05 <= failover <= high + 1.0

# %% [markdown]
# A graceful stop (`SIGTERM`) releases the slot, and the next follower round takes it
# within about I. Compare the `leader-crash` and `leader-graceful-shutdown` scenarios in
# the simulator.
