"""The `actions-server` command line.

Every command takes the config file first. Errors a user can fix (problems in
the config or manifests, a database that cannot be reached, a failing
migration) print what is wrong and exit 1 without a traceback. One module per
group of commands; each registers its commands on `main`.
"""

from . import inspect, mcp, operate, run, scaffold, serving
from .common import main

__all__ = ["inspect", "main", "mcp", "operate", "run", "scaffold", "serving"]
