#!/usr/bin/env python3
"""Drives PyPI `opentelemetry-opamp-client` (a peer we did not write) against an OpAMP server,
for the opamp-rs interop tests (crates/opamp-interop).

    python agent.py URL [--service-name NAME] [--heartbeat SECONDS] [--timeout-ms MS] [--verbose]

stdout: one JSON object per line, each with an "event" key (the same shapes as
interop/node/agent.js):
    {"event":"started","peer":"python","instance_uid":HEX}
    {"event":"connected"}                                     first successful exchange
    {"event":"exchange","seq":N,"sent":[...],"s2a_instance_uid":HEX,"flags":N,
     "server_capabilities":N,"remote_config_hash":HEX|null,
     "http_status":N,"content_type":S}                       every successful exchange
    {"event":"send_failed","seq":N,"error":STRING,"http_status":N|null,"content_type":S|null}
    {"event":"remote_config","hash":HEX,"files":{NAME:{"content_type":S,"body":S}}}
    {"event":"remote_config_status","status":"APPLIED","hash":HEX}
    {"event":"stopped"}
stderr: the client's log lines (warnings and above; everything with --verbose).

The remote config is "applied" by reporting APPLIED with its hash (RCFG-3) and recording the
files as the effective config. The process runs until stdin closes, or SIGTERM/SIGINT; then
OpAMPAgent.stop() sends agent_disconnect and the process exits 0.

stdin: the line `repeat-heartbeat` queues one heartbeat payload twice, so the server gets the
same sequence number twice in a row (as it does when the client retries a request).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from opentelemetry._opamp.agent import OpAMPAgent
from opentelemetry._opamp.callbacks import OpAMPCallbacks
from opentelemetry._opamp.client import OpAMPClient
from opentelemetry._opamp.proto import opamp_pb2
from opentelemetry._opamp.transport.requests import RequestsTransport

_emit_lock = threading.Lock()
_closed = False


def emit(obj: dict) -> None:
    """Prints one event line; nothing after the final "stopped" (daemon threads may linger)."""
    global _closed
    with _emit_lock:
        if _closed:
            return
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
        _closed = obj.get("event") == "stopped"


def hexb(b: bytes) -> str | None:
    return b.hex() if b else None


def sent_parts(a2s: opamp_pb2.AgentToServer) -> list[str]:
    return [
        name
        for name in ("agent_description", "remote_config_status", "effective_config", "agent_disconnect")
        if a2s.HasField(name)
    ]


class ObservingTransport(RequestsTransport):
    """The package's own requests transport, reporting every exchange as a JSON event."""

    def __init__(self) -> None:
        super().__init__()
        self.connected = False
        # The HTTP status and Content-Type of the latest response (one request at a time).
        self.last = {"http_status": None, "content_type": None}

        def remember(response, *_args, **_kwargs):
            self.last = {
                "http_status": response.status_code,
                "content_type": response.headers.get("Content-Type"),
            }

        self.session.hooks["response"].append(remember)

    def send(self, *, data: bytes, **kwargs):  # type: ignore[override]
        a2s = opamp_pb2.AgentToServer()
        a2s.ParseFromString(data)
        self.last = {"http_status": None, "content_type": None}
        try:
            s2a = super().send(data=data, **kwargs)
        except Exception as exc:
            emit({"event": "send_failed", "seq": a2s.sequence_num, "error": str(exc), **self.last})
            raise
        if not self.connected:
            self.connected = True
            emit({"event": "connected"})
        emit(
            {
                "event": "exchange",
                "seq": a2s.sequence_num,
                "sent": sent_parts(a2s),
                "s2a_instance_uid": hexb(s2a.instance_uid),
                "flags": s2a.flags,
                "server_capabilities": s2a.capabilities,
                "remote_config_hash": hexb(s2a.remote_config.config_hash)
                if s2a.HasField("remote_config")
                else None,
                **self.last,
            }
        )
        return s2a


class ApplyingCallbacks(OpAMPCallbacks):
    def __init__(self) -> None:
        self.applied_hash: bytes | None = None

    def on_message(self, agent, client, message) -> None:
        rc = message.remote_config
        if rc is None:
            return
        files = {
            name: {"content_type": f.content_type, "body": f.body.decode("utf-8", "replace")}
            for name, f in rc.config.config_map.items()
        }
        emit({"event": "remote_config", "hash": hexb(rc.config_hash), "files": files})
        if rc.config_hash == self.applied_hash:
            return  # MSG-3: repeated offers are idempotent.
        self.applied_hash = rc.config_hash
        # "Apply": the remote files become the effective config, verbatim.
        client.update_effective_config({name: f["body"] for name, f in files.items()}, "text/plain")
        status = client.update_remote_config_status(
            remote_config_hash=rc.config_hash,
            status=opamp_pb2.RemoteConfigStatuses_APPLIED,
        )
        if status is not None:
            agent.send(client.build_remote_config_status_response_message(status))
            emit({"event": "remote_config_status", "status": "APPLIED", "hash": hexb(rc.config_hash)})

    def on_error(self, agent, client, error_response) -> None:
        emit({"event": "error_response", "type": error_response.type, "message": error_response.error_message})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--service-name", default="interop-python-agent")
    p.add_argument("--heartbeat", type=float, default=1.0, help="seconds between heartbeats")
    p.add_argument("--timeout-ms", type=int, default=10_000, help="per-request timeout")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="[python-client %(levelname)s] %(name)s: %(message)s",
    )

    client = OpAMPClient(
        endpoint=args.url,
        timeout_millis=args.timeout_ms,
        agent_identifying_attributes={"service.name": args.service_name, "service.version": "1.2.3"},
        agent_non_identifying_attributes={
            "os.type": sys.platform,
            "host.name": "interop-host",
            "telemetry.sdk.language": "python",
        },
        transport=ObservingTransport(),
    )
    agent = OpAMPAgent(interval=args.heartbeat, callbacks=ApplyingCallbacks(), client=client)
    # The client has no getter for its uid; read it from a message it builds (building does
    # not consume a sequence number: only send() does).
    probe = opamp_pb2.AgentToServer()
    probe.ParseFromString(client.build_heartbeat_message())
    emit({"event": "started", "peer": "python", "instance_uid": hexb(probe.instance_uid)})

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "repeat-heartbeat":
                # What the client itself does when it retries: a payload is encoded once,
                # when it is queued, and sent again unchanged, sequence number included.
                payload = client.build_heartbeat_message()
                agent.send(payload)
                agent.send(payload)
                emit({"event": "repeat_queued"})
        stop.set()

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    agent.start()
    while not stop.wait(0.2):
        pass
    agent.stop(timeout=5)
    emit({"event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
