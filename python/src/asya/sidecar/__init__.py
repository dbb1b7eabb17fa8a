"""The Asya sidecar: moves envelopes between an actor's queue and its runtime.

Read the data path in order: ``consuming`` (queue, concurrency, shutdown) ->
``processing`` (one envelope: check, call, publish, ack) -> ``runtime_client``
(socket protocol) -> ``routing`` (outputs and error envelopes, pure).
"""

from asya.sidecar.consuming import Sidecar
from asya.sidecar.processing import Outcome, Processor
from asya.sidecar.settings import SidecarSettings

__all__ = ["Outcome", "Processor", "Sidecar", "SidecarSettings"]
