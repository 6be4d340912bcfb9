"""The shared URL frontier: state transitions in Lua, atomic on the server.

``transitions`` is the client (add, claim, complete, retry, reclaim, stats);
``leases`` the values it hands back (a lease, a claim's result, add counts);
``scripts`` loads and runs the Lua scripts in pipelines (group commit);
``local`` is what one process remembers to spare Redis work; ``lua/`` holds
one script a transition plus their shared helpers.
"""

from crawler.frontier.leases import AddCounts, ClaimResult, Lease
from crawler.frontier.scripts import Call, ScriptRunner
from crawler.frontier.transitions import Frontier

__all__ = ["AddCounts", "Call", "ClaimResult", "Frontier", "Lease", "ScriptRunner"]
