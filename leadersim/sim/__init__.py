"""The simulator: the unmodified elector on a SimPy-clocked asyncio loop, with faults.

The only package of leadersim that imports SimPy.
"""

from leadersim.sim.clock import NodeClock
from leadersim.sim.faults import Fault, random_schedule
from leadersim.sim.loop import NodeTag, SimLoop, SimulationDeadlock
from leadersim.sim.scenario import Scenario
from leadersim.sim.storage import ProtectedResource, SimStorage, StorageServer
from leadersim.sim.world import Run, World

__all__ = [
    "Fault",
    "NodeClock",
    "NodeTag",
    "ProtectedResource",
    "Run",
    "Scenario",
    "SimLoop",
    "SimStorage",
    "SimulationDeadlock",
    "StorageServer",
    "World",
    "random_schedule",
]
