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
# # 4. Fencing: why two nodes both acted as leader, and how to make it harmless
#
# A lease-based elector keeps one shared record — who leads, and when each member last
# renewed. A leader renews every `renew_interval` (I); if a renew round keeps failing for
# `renew_deadline` (D), it stops its work. A follower waits `lease_duration` (L) on *its
# own* clock after it last saw the leader renew, then takes the slot.
#
# That is safe only if the old leader stops before the new one starts. This notebook runs
# the **real elector** (the same class you would deploy on SQLite or PostgreSQL) inside
# the simulator, freezes the leader for 20 s — a stop-the-world GC pause — and looks at
# what happens; then it does the same to real members on SQLite and PostgreSQL, with and
# without a fenced write (`txn_with_leader_lock`).

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
# ## For real: a paused member on SQLite
#
# Now the real thing. Member **n1** runs in this notebook's process, on an event loop of
# its own; member
# **n2** is a separate OS process (a `Lab` member) on the same database. n1's work is
# the classic check-then-act: `if elector.is_leader(): ... write`. Between the check and
# the write we freeze n1's whole event loop for 2.5 s with `time.sleep` — renewals,
# timers, everything stops, as in a stop-the-world GC pause. Timings are scaled down
# (L/I/D = 1/0.1/0.5 s) so a run takes a few seconds.
#
# Every write goes into a `ledger` table. An *unfenced* write is a plain `INSERT`; a
# *fenced* one runs inside `storage.txn_with_leader_lock("n1", ...)`, which checks, in
# the same transaction, that the election record still names n1. Each write is traced
# as a guarded write, so the verdict counts the harmful ones.

# %%
import asyncio
import concurrent.futures
import logging
import tempfile
import time
from pathlib import Path

from leadersim import (
    Config,
    Elector,
    EventKind,
    NotLeaderError,
    Result,
    TraceRecorder,
)
from leadersim.lab import Lab
from leadersim.storage import open_storage

REAL_LEASE, REAL_INTERVAL, REAL_DEADLINE, REAL_PAUSE = 1.0, 0.1, 0.5, 2.5


# The elector logs a lost lease at WARNING; the timeline shows it, so keep the log quiet.
QUIET = logging.getLogger("notebook.n1")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def run(coro):
    """Run ``coro`` on a fresh event loop in a worker thread (Jupyter's own loop is busy)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def ledger_sql(storage, statement):
    """Run one SQL statement on the storage's connection (SQLite or SQLAlchemy)."""

    async def run(conn):
        if hasattr(conn, "execute_fetchall"):  # aiosqlite
            await conn.execute(statement)
        else:  # SQLAlchemy AsyncConnection
            from sqlalchemy import text

            await conn.execute(text(statement))

    return run


async def unfenced(storage, statement):
    """A plain write: on SQLite's own connection, or on a pooled server connection."""
    if hasattr(storage, "connection"):
        await ledger_sql(storage, statement)(storage.connection)
    else:
        async with storage.engine.begin() as conn:  # commits at the end
            await ledger_sql(storage, statement)(conn)


async def paused_leader_run(target, workdir, *, fenced, table="election"):
    """n1 here, n2 as a process on ``target``; n1 pauses between its check and its write.

    Returns the merged trace as a Result.
    """
    storage = await open_storage(target, table)
    ledger = f"{table}_ledger"
    await unfenced(storage, f"CREATE TABLE IF NOT EXISTS {ledger} (writer TEXT, seq INTEGER)")
    recorder = TraceRecorder()
    pause_next = asyncio.Event()
    pending = set()

    async def write(seq):
        sent_at = time.monotonic()
        insert = f"INSERT INTO {ledger} VALUES ('n1', {seq})"
        try:
            if fenced:
                await storage.txn_with_leader_lock("n1", ledger_sql(storage, insert))
            else:
                await unfenced(storage, insert)
            accepted = True
        except NotLeaderError:
            accepted = False
        named = (await storage.get()).leader_id
        stale = not accepted or named != "n1"
        details = {
            "seq": seq,
            "accepted": accepted,
            "stale": stale,
            "fencing": fenced,
            "leader_id": named,
            "sent_at": sent_at,
        }
        recorder("n1", time.monotonic(), EventKind.GUARDED_WRITE, details)

    async def work():
        seq = 0
        while True:
            if elector.is_leader():  # check ...
                if pause_next.is_set():
                    pause_next.clear()
                    recorder(
                        "n1",
                        time.monotonic(),
                        EventKind.FAULT_START,
                        {"fault": 0, "kind": "pause", "duration": REAL_PAUSE},
                    )
                    time.sleep(REAL_PAUSE)  # noqa: ASYNC251 (blocking the loop is the point)  # ... a stop-the-world pause of the whole loop ...
                    recorder("n1", time.monotonic(), EventKind.FAULT_END, {"fault": 0})
                seq += 1
                # ... then act. A write in flight lands even if the callback is cancelled
                # meanwhile (as a deposed leader's request does): shield it.
                task = asyncio.ensure_future(write(seq))
                pending.add(task)
                await asyncio.shield(task)
            await asyncio.sleep(0.2)

    elector = Elector(
        Config(
            "n1",
            storage=storage,
            leader_callback=work,
            lease_duration=REAL_LEASE,
            renew_interval=REAL_INTERVAL,
            renew_deadline=REAL_DEADLINE,
        ),
        observer=recorder,
        logger=QUIET,
    )
    url = target if "://" in str(target) else None
    lab = Lab(
        Path(workdir) / "election.db",
        ["n2"],
        lease_duration=REAL_LEASE,
        renew_interval=REAL_INTERVAL,
        renew_deadline=REAL_DEADLINE,
        trace_dir=workdir,
        table_name=table,
        url=url,
    )
    election = asyncio.create_task(elector.run_election())
    try:
        await elector.wait_leader()
        with lab:
            lab.start()
            # n2 follows once it has renewed and seen n1 renew a few times.
            await asyncio.to_thread(lab.wait_for_event, EventKind.RENEW_OK, timeout=30)
            await asyncio.sleep(0.5)
            pause_next.set()
            # Wait until n2 took over, n1 woke and wrote, and n2 led on for a moment.
            taken = await asyncio.to_thread(
                lab.wait_for_event, EventKind.CALLBACK_STARTED, timeout=30
            )
            await asyncio.sleep(max(0.0, taken.true_time + REAL_PAUSE - time.monotonic()))
            await asyncio.gather(*pending)
            election.cancel()
            await asyncio.gather(election, return_exceptions=True)
            await asyncio.to_thread(lab.stop_all)
            events = [*recorder.events, *lab.read_trace()]
    finally:
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)
        if url is not None:
            await unfenced(storage, f"DROP TABLE IF EXISTS {ledger}")
            await unfenced(storage, f"DROP TABLE IF EXISTS {table}")
        await storage.close()
    events.sort(key=lambda e: e.true_time)
    kind = "fenced" if fenced else "unfenced"
    return Result(events, name=f"{kind} writes on {'a server' if url else 'SQLite'}")


real = {}
for fenced in (False, True):
    workdir = tempfile.mkdtemp(prefix="leadersim-fencing-")
    real[fenced] = run(paused_leader_run(Path(workdir) / "election.db", workdir, fenced=fenced))
    print(real[fenced].verdict.line())

# %% [markdown]
# The timelines of the two runs: n1 freezes (hatched), n2 takes over after a lease,
# n1 wakes with its callback still running — the red band — and its pending write goes
# out before its elector notices.

# %%
fig, axes = plt.subplots(2, 1, figsize=(12, 6))
for ax, fenced in zip(axes, (False, True), strict=True):
    real[fenced].plot_timeline(ax=ax)
fig.tight_layout()
show(axes[0])

# %%
for fenced in (False, True):
    writes = real[fenced].writes()
    print(f"{'fenced' if fenced else 'unfenced'}:", writes.groupby("class").size().to_dict())
unfenced_run, fenced_run = real[False].summary(), real[True].summary()
# The pause (2.5 s) outlasts the lease (1 s) plus a round: n2 takes over, the two overlap.
assert unfenced_run["overlap_s"] > 0
assert fenced_run["overlap_s"] > 0
# Unfenced, the woken leader's write is accepted: harm. Fenced, it is refused.
assert unfenced_run["stale_accepted"] >= 1
assert fenced_run["stale_accepted"] == 0
assert fenced_run["stale_rejected"] >= 1
assert str(real[True].verdict.level) == "OVERLAP-FENCED"

# %% [markdown]
# ## The same on PostgreSQL
#
# `txn_with_leader_lock` on a server takes a shared lock on the leader row (`FOR
# SHARE`), so a leader change waits for a fenced transaction in flight. The cell runs
# against `LEADERSIM_POSTGRES_URL` (default: the local `test` database) and skips its
# server part, saying why, when no server answers.

# %%
import os
import socket

from sqlalchemy import make_url

PG_URL = os.environ.get(
    "LEADERSIM_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
parsed = make_url(PG_URL)
try:
    socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), 2).close()
    reachable = True
except OSError as exc:
    reachable = False
    print(f"skipped: PostgreSQL at {parsed.host}:{parsed.port} is unreachable ({exc})")
if reachable:
    server = {}
    for fenced in (False, True):
        workdir = tempfile.mkdtemp(prefix="leadersim-fencing-pg-")
        table = f"fencing_{os.getpid()}_{int(fenced)}"
        server[fenced] = run(paused_leader_run(PG_URL, workdir, fenced=fenced, table=table))
        print(server[fenced].verdict.line())
    assert server[False].summary()["stale_accepted"] >= 1
    assert server[True].summary()["stale_accepted"] == 0
    assert server[True].summary()["stale_rejected"] >= 1

# %% [markdown]
# **Takeaways.** Timing (L − I − D, the *slack*) can only make an overlap unlikely; a
# process pause, a slow callback stop or a late reply eats it. Make the protected
# resource check leadership at write time (fencing), and keep the work from acting on a
# stale `is_leader()` — on SQLite and on a server alike, `txn_with_leader_lock` is that
# check, in the same transaction as the write.
