"""The Asya sidecar: the runtime-backed processor of the consumer engine.

Data path, top to bottom: ``asya.engine.consuming`` (queue, settle) ->
``processing`` (check, call the runtime, publish) -> ``runtime_client``
(socket protocol) / ``routing`` (pure: output envelopes) -> ``publishing``
(confirmed publish to the next queue).
"""

from asya.sidecar.processing import Outcome, RuntimeProcessor
from asya.sidecar.settings import SidecarSettings

__all__ = ["Outcome", "RuntimeProcessor", "SidecarSettings"]
