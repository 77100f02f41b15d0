"""The physical baseline: plain grpcio asyncio over the same mutual TLS, nothing else.

Server (its own process): `python -m bench.rawgrpc --key K --cert C --ca CA` listens on
127.0.0.1 with the node exchange server's options (CHANNEL_OPTIONS, client certificates
required) and a trivial generic handler. One deliberate difference: the exchange server
caps HTTP/2 streams at 64, and a client that keeps exactly 64 calls in flight races that
cap (a new stream opens before the server has retired the previous one) and gets
RST_STREAM REFUSED_STREAM now and then; the baseline allows 128 so that it measures the
transport, not that race.

- `/bench.Raw/Echo`: unary, any request -> `REPLY_BYTES` bytes (about a signed receipt);
- `/bench.Raw/Sink`: client stream, discards every message, returns the byte count.

It prints `PORT <n>` on stdout once serving, and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import select
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from bench import procs
from broker.adapters.grpc.client import CHANNEL_OPTIONS
from broker.adapters.grpc.identity import node_dns_name

ECHO = "/bench.Raw/Echo"
SINK = "/bench.Raw/Sink"
REPLY_BYTES = 256
_REPLY = bytes(range(256)) * (REPLY_BYTES // 256)


async def _echo(request: bytes, context: Any) -> bytes:
    del request, context
    return _REPLY


async def _sink(requests: AsyncIterator[bytes], context: Any) -> bytes:
    del context
    total = 0
    async for piece in requests:
        total += len(piece)
    return total.to_bytes(8, "big")


async def serve(key: bytes, cert: bytes, ca: bytes, listen: str) -> None:
    server = grpc.aio.server(options=[*CHANNEL_OPTIONS, ("grpc.max_concurrent_streams", 128)],
                             maximum_concurrent_rpcs=256)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Raw", {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Sink": grpc.stream_unary_rpc_method_handler(_sink),
    }),))
    creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                        require_client_auth=True)
    port = server.add_secure_port(listen, creds)
    await server.start()
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def channel(port: int, *, key: Path, cert: Path, ca: Path, server_node: str) -> grpc.aio.Channel:
    """A client channel like the node's GrpcTransport opens one (same options and checks)."""
    creds = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes(),
                                         private_key=key.read_bytes(),
                                         certificate_chain=cert.read_bytes())
    options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", node_dns_name(server_node))]
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=options)


def start(*, key: Path, cert: Path, ca: Path, log: Path,
          timeout_s: float = 30.0) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server process; returns it and its port once it serves."""
    proc = procs.spawn(["-m", "bench.rawgrpc", "--key", str(key), "--cert", str(cert),
                        "--ca", str(ca)], log, stdout_pipe=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("PORT "):
        procs.stop([proc])
        raise RuntimeError(f"the baseline server did not start (see {log})")
    return proc, int(line.split()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rawgrpc")
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--listen", default="127.0.0.1:0")
    args = parser.parse_args(argv)
    if not args.listen.startswith("127.0.0.1:"):
        parser.error("the baseline server listens on 127.0.0.1 only")
    asyncio.run(serve(args.key.read_bytes(), args.cert.read_bytes(), args.ca.read_bytes(),
                      args.listen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
