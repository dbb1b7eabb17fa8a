"""The gateway: REST front door for jobs, backed by PostgreSQL (SPEC §9).

Modules, one concern each: ``settings`` (env), ``migrations`` (schema),
``store`` (jobs and events SQL), ``notify`` (LISTEN/NOTIFY fan-out),
``streaming`` (SSE), ``auth`` (bearer tokens), ``jobs_api`` and ``reports``
(endpoints), ``context`` (what a process holds), ``app`` (ASGI app),
``openapi`` (the served document). ``python -m asya.gateway migrate|serve``.
"""
