"""The consumer engine every Asya process that reads a queue runs.

``Engine`` owns the loop (bounded concurrency, leases, settle, delivery limit,
SIGTERM drain), the probes and metrics server, the gateway reporter and the
shared settings; the sidecar (``asya.sidecar``) and the end actors
(``asya.crew``) are ``Processor`` implementations plugged into it. See
``consuming.py`` for where a delivery is acknowledged.
"""

from asya.engine.consuming import Engine, Processor, Verdict, run_until_signalled
from asya.engine.failures import Failure
from asya.engine.metrics import Metrics
from asya.engine.reporting import Reporter
from asya.engine.settings import EngineSettings

__all__ = ["Engine", "EngineSettings", "Failure", "Metrics", "Processor", "Reporter", "Verdict", "run_until_signalled"]
