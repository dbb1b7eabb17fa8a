"""Asya: asynchronous multi-step AI pipelines built from actors.

Subpackages: ``contracts`` (wire formats, shared by everything), ``runtime``
(stdlib-only handler host), ``sidecar`` (queue <-> runtime bridge, with
``transports``), ``crew`` (end actors), ``cli`` (the ``asya`` command).
"""

__version__ = "0.2.0"
__all__ = ["__version__"]
