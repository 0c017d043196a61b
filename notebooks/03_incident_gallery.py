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
# # 3. Incident gallery
#
# Part B of the catalogue (`docs/catalogue.md`) replays published incidents of leader
# election — GitHub, HBase, Elasticsearch, Redis Sentinel, Kubernetes, GitLab,
# Cloudflare — on leadersim's elector, scaled to what a lease-based elector on one
# shared row can show. For each one below: the facts (the catalogue's summary and its
# source), the timeline of the replay, the harm (split brain, and *stale writes
# accepted*: writes a deposed leader got into the protected resource), and the fix —
# fencing, a tuned L/I/D, or a leader that stops promptly — run the same way.
#
# Every replay is judged against the catalogue's own expected verdict, written from the
# timing theory before any run: the statements that must hold in *every* seed are
# checked on the seed shown here, so a regression breaks this notebook.

# %%
import dataclasses
import warnings

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from matplotlib_inline.backend_inline import set_matplotlib_formats

from leadersim import SafetyWarning, simulate
from leadersim.catalogue import CATALOGUE, check, scenario_metrics

warnings.simplefilter("ignore", SafetyWarning)  # most incidents run the zero-slack defaults
# Figures are shown as PNG, whichever matplotlib backend is active: Jupyter's inline
# one, or the Agg that CI selects through MPLBACKEND. A modest dpi keeps the saved
# notebook small: the gallery has 22 timelines.
set_matplotlib_formats("png")
plt.rcParams["figure.dpi"] = 60
SEED = 0
COLUMNS = ["level", "overlap_s", "stale_accepted", "stale_rejected", "no_leader_s", "failovers"]


def plot_incident(name, fixes, *, window=None):
    """Replay catalogue entry ``name`` (its default variant) beside its ``fixes``.

    Shows the facts, the timelines of the incident and of the first fix, and a table of
    the harm per variant; checks the catalogue's every-seed expectations on ``SEED``.
    Returns the summary table (one row per variant).
    """
    entry = CATALOGUE[name]
    display(
        Markdown(
            f"**{entry.id} `{name}`** — {entry.title}  \n"
            f"*Assumptions:* {entry.assumptions}.  *Source:* <{entry.source}>"
        )
    )
    variants = [entry.default, *fixes]
    results = {v: simulate(f"{name}[{v}]", seed=SEED) for v in variants}
    faults = results[entry.default].faults()
    start, end = window or (
        max(0.0, faults["start"].min() - 15),
        min(results[entry.default].end_time, faults["end"].max() + 25),
    )
    shown = variants[:2]
    fig, axes = plt.subplots(len(shown), 1, figsize=(12, 2.9 * len(shown)), squeeze=False)
    for i, (ax, variant) in enumerate(zip(axes[:, 0], shown, strict=True)):
        results[variant].plot_timeline(
            ax=ax, start=start, end=end, fault_labels=4, renewals=False, legend=i == 0, title=False
        )
        v = results[variant].verdict
        ax.set_title(
            f"{name}[{variant}] {v.level}: split brain {v.overlap_s:.1f} s, no leader "
            f"{v.no_leader_s:.1f} s, stale writes accepted {v.stale_accepted} / refused "
            f"{v.stale_rejected}",
            fontsize=10,
        )
    fig.tight_layout()
    display(fig)
    plt.close(fig)
    table = pd.DataFrame({v: r.summary() for v, r in results.items()}).T[COLUMNS]
    display(table)
    # The catalogue's expectations that must hold in every seed, on this seed.
    every = dataclasses.replace(
        entry,
        expect=tuple(
            e for e in entry.expect if e.over == "every" and e.variant in (None, *variants)
        ),
    )
    metrics = {v: [scenario_metrics(r.events, r.end_time)] for v, r in results.items()}
    failures = check(every, metrics)
    assert not failures, failures
    print(f"{len(every.expect)} expectations of the catalogue hold on seed {SEED}")
    return table


# %% [markdown]
# ## B1 — GitHub, October 2018: 43 seconds of partition
#
# A partition cut the primary site off from the election store for 43 s, but not from
# its clients. The other side elected a new leader; the old side kept accepting writes,
# and the two write histories had to be reconciled by hand for a day. In the replay the
# old leader's work takes C = 33 s to stop after its renew gives up — the time the old
# side went on writing.

# %%
b1 = plot_incident("github-2018-partition", ["C=33-fencing", "C=0.1"])
assert b1.loc["C=33", "stale_accepted"] >= 29  # ~one write per second of the overlap
assert b1.loc["C=33-fencing", "stale_accepted"] == 0  # fencing: the same overlap, no harm
assert b1.loc["C=0.1", "overlap_s"] <= 0.2  # a leader that stops promptly: no overlap

# %% [markdown]
# **Fix:** fence the resource (`txn_with_leader_lock`): the split brain still lasts
# 33 s, but every stale write is refused. Or make the leader stop promptly when it loses
# the lease — for work that cannot be cancelled quickly, `exit_on_renew_fail=True` makes
# `run_election` raise `RenewFailedError`, so the process can exit; in the replay that
# is the `C=0.1` run.
#
# ## B2 — GitHub, December 2012: a 90-second network freeze
#
# A switch froze the network; nobody could reach anything. With a fencing
# (STONITH) design that went wrong, both sides shot at each other. Here the shared row
# is the arbiter: nobody can renew, so the leader stops after I + D and nobody leads —
# the freeze costs availability, not safety.

# %%
b2 = plot_incident("github-2012-stonith", ["n1-cut"])
assert b2.loc["both-cut", "overlap_s"] == 0
assert b2.loc["both-cut", "no_leader_s"] >= 80  # the price: no leader during the freeze

# %% [markdown]
# ## B3 — GitHub, September 2012: flapping failovers under load
#
# Load made the healthy primary's health checks time out; the cluster failed over, then
# failed over again. In the replay the leader's storage round trips slow to 5 s each way
# during two spells: its read-modify-write can no longer finish inside one round, so it
# loses every compare-and-swap to the followers and is pruned as if it had crashed —
# one false failover per spell. A longer deadline does not help (the catalogue explains
# why); it only makes each failover slower.

# %%
b3 = plot_incident("github-2012-flapping-failover", ["30/2/20"])
assert b3.loc["10/2/8", "overlap_s"] == 0
assert b3.loc["10/2/8", "failovers"] == b3.loc["30/2/20", "failovers"] == 2

# %% [markdown]
# ## B4 — HBase "Juliet" pause: a full GC longer than the session
#
# A region server froze in a garbage collection for longer than its ZooKeeper session;
# the master reassigned its regions; on waking, the server went on writing before it
# noticed it was dead. Here a 79-s pause of the leader with 10/2/8.

# %%
b4 = plot_incident("hbase-juliet-pause", ["P=79-10/2/8-fencing", "P=79-90/2/60"])
assert b4.loc["P=79-10/2/8", "stale_accepted"] >= 1
assert b4.loc["P=79-10/2/8-fencing", "stale_accepted"] == 0
assert b4.loc["P=79-90/2/60", "overlap_s"] == 0  # a lease longer than the pause + I

# %% [markdown]
# **Fix:** fencing refuses the woken leader's write. A lease longer than the pause also
# avoids the take-over — but a pause has no upper bound, and the long lease costs a
# 90-s failover after a real crash.
#
# ## B5 — Elasticsearch: the master's GC pauses during a backup
#
# The master node froze in GC for 42 s and then 55 s during a nightly backup; the other
# nodes elected another master, and two masters disagreed about the cluster.

# %%
b5 = plot_incident("elasticsearch-master-gc", ["10/2/8-fencing", "60/2/50"])
assert b5.loc["10/2/8", "stale_accepted"] >= 2  # one per pause
assert b5.loc["10/2/8-fencing", "stale_accepted"] == 0
assert b5.loc["60/2/50", "overlap_s"] == 0

# %% [markdown]
# ## B6 — Redis Sentinel (Jepsen): the minority primary keeps acknowledging writes
#
# A partition isolates the primary with one replica; the majority promotes another
# primary; the old one keeps acknowledging client writes, which are lost when the
# partition heals. In the replay the old leader's work takes 50 s to notice, at ten
# writes a second.

# %%
b6 = plot_incident("redis-sentinel-partition", ["C=50-fencing", "C=0.1"])
assert b6.loc["C=50", "stale_accepted"] >= 400
assert b6.loc["C=50-fencing", "stale_accepted"] == 0
assert b6.loc["C=0.1", "overlap_s"] <= 0.2

# %% [markdown]
# ## B7 — Kubernetes: two schedulers act at once
#
# The old kube-scheduler failed to renew its lease; a new one took over while the old
# scheduling loop was still placing pods (it only stops at the end of its current
# cycle). With the Kubernetes timings 15/2/10 the slack is 3 s: a loop that takes 5 s to
# stop overlaps, one that takes 2 s does not.

# %%
b7 = plot_incident("k8s-scheduler-dual-leader", ["C=5-fencing", "C=2"])
assert b7.loc["C=5-fencing", "stale_accepted"] == 0
assert b7.loc["C=2", "overlap_s"] == 0  # stop within the slack: safe

# %% [markdown]
# ## B8 — Kubernetes: the system clock jumps an hour
#
# A wall-clock step made leader-election code that used wall time think leases had
# expired. leadersim measures every duration on the monotonic clock (the wall clock only
# stamps `renew_time`, compared for change), so the replay shows nothing at all — which
# is the point.

# %%
b8 = plot_incident("k8s-scheduler-clock-jump", [], window=(40, 100))
assert b8.loc["base", "overlap_s"] == 0
assert b8.loc["base", "failovers"] == 0

# %% [markdown]
# ## B9 — Kubernetes: an overloaded etcd makes leaders lose their leases
#
# A slow store answered with timeouts for a minute; components with the default
# timings lost leadership and restarted. OpenShift's answer was longer timings
# (137/26/107 s), which ride out a minute of errors — unless requests hang rather than
# fail.

# %%
b9 = plot_incident("k8s-slow-etcd-lease-loss", ["137/26/107", "hang-137/26/107"])
assert b9.loc["10/2/8", "no_leader_s"] >= 40
assert b9.loc["137/26/107", "no_leader_s"] == 0

# %% [markdown]
# ## B10 — GitLab, 2019: Patroni demotes the primary on Consul timeouts
#
# Store timeouts made the leader's renewal fail; Patroni demoted the primary (safe) and
# nobody led until a write succeeded again. A deadline longer than the outage keeps the
# leader.

# %%
b10 = plot_incident("gitlab-2019-patroni-consul", ["60/10/45"])
assert b10.loc["30/10/10", "overlap_s"] == 0
assert b10.loc["30/10/10", "no_leader_s"] >= 5
assert b10.loc["60/10/45", "no_leader_s"] == 0

# %% [markdown]
# ## B11 — Cloudflare, 2020: a half-broken network under etcd
#
# A switch failed in a way that let reads through but not commits: the store looked
# alive but could not elect or renew. In (a) no node can commit: the leader stops and
# nobody leads for the whole 600 s (safe); in (b) only the leader cannot, so the others
# take over after a lease. 15/2/8 gives the slack that (b) needs.

# %%
b11 = plot_incident("cloudflare-2020-byzantine-etcd", ["b", "b-15/2/8"], window=(40, 700))
assert b11.loc["a", "overlap_s"] == 0
assert b11.loc["b-15/2/8", "overlap_s"] == 0

# %% [markdown]
# ## The gallery in one table

# %%
gallery = pd.concat(
    {
        name: table
        for name, table in zip(
            [e.name for e in CATALOGUE.values() if e.id.startswith("B")],
            [b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11],
            strict=True,
        )
    }
)
unsafe = gallery[gallery["level"] == "UNSAFE"]
print(f"{len(unsafe)} replays were UNSAFE:", ", ".join(f"{n}[{v}]" for n, v in unsafe.index))
print("stale writes they accepted:", int(unsafe["stale_accepted"].sum()))
# Every unsafe replay has a fix in the gallery that is not unsafe (fencing or timing).
for name in set(unsafe.index.get_level_values(0)):
    assert (gallery.loc[name]["level"] != "UNSAFE").any(), name
# Which replays are unsafe on this seed (k8s-scheduler-dual-leader[C=5] overlaps in some
# seeds only: a regression bound for seed 0, where it overlaps 0.7 s).
assert set(unsafe.index.get_level_values(0)) == {
    "github-2018-partition",
    "hbase-juliet-pause",
    "elasticsearch-master-gc",
    "redis-sentinel-partition",
    "k8s-scheduler-dual-leader",
}
gallery

# %% [markdown]
# **Takeaways.** The harmful incidents share one shape: a leader that *keeps acting*
# after it has lost the lease — a pause, a slow stop, a partition that leaves its
# clients connected. Timing can shrink that window only for bounded delays; fencing
# makes it harmless whatever its length. The others cost availability, not safety, and
# their fix is a deadline that outlasts the store's bad minute.
