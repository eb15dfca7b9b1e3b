"""Local venue simulator speaking Bybit v5, Binance USD-M and MEXC contract (venues.md §8)."""

from titan.venues.sim.config import SimAccount, SimConfig, SimInstrument, load_sim_config
from titan.venues.sim.faults import Faults
from titan.venues.sim.server import SimServer

__all__ = ["Faults", "SimAccount", "SimConfig", "SimInstrument", "SimServer", "load_sim_config"]
