"""TCP forwarders from the node's bridge address to loopback servers.

The test servers (ci/rabbitmq.sh, ci/seaweedfs.sh, ci/postgresql.sh) listen on 127.0.0.1
only, which a pod cannot reach (its loopback is its own). A forwarder listens on the
bridge address (10.244.0.1, the host side of the pods' bridge) and relays each connection
to the loopback server, so the pods use the same real servers as the other suites; the
servers see 127.0.0.1 as the peer (RabbitMQ's guest user is allowed on loopback only).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def forwarders(listen_host: str, targets: dict[str, int]) -> Iterator[dict[str, int]]:
    """Forward ``listen_host:<new port>`` to ``127.0.0.1:<port>`` for each named target.

    Yields ``{name: listen port}``; every listener closes on exit.
    """
    loop = asyncio.new_event_loop()
    ports = {name: _free_port(listen_host) for name in targets}
    servers: list[asyncio.Server] = []

    async def start() -> None:
        for name, target in targets.items():

            async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter, target: int = target) -> None:
                try:
                    tr, tw = await asyncio.open_connection("127.0.0.1", target)
                except OSError:
                    w.close()
                    return
                await asyncio.gather(_pipe(r, tw), _pipe(tr, w))

            servers.append(await asyncio.start_server(handle, listen_host, ports[name]))

    thread = threading.Thread(target=loop.run_forever, daemon=True, name="cluster-forwarders")
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield ports
    finally:

        async def stop() -> None:
            for s in servers:
                s.close()
            # relays still open (a pod's AMQP connection) end here, not with the closed loop
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
