"""The least of QEMU's machine protocol (QMP) the vm-restore runner needs: commands, their replies,
events, and a file descriptor passed with a command (SCM_RIGHTS). One JSON object per line."""

from __future__ import annotations

import json
import select
import socket
import time

from bench.errors import MeasurementError


class Qmp:
    """QMP over a socket whose other end QEMU was given (-chardev socket,fd=N -mon ...,mode=control)."""

    def __init__(self, sock: socket.socket, timeout_s: float = 10.0) -> None:
        self.sock, self.timeout_s = sock, timeout_s
        self.buffer = b""
        self.events: list[dict] = []
        self._message()  # the greeting
        self.execute("qmp_capabilities")  # events are sent only from here on

    def _message(self, deadline: float | None = None) -> dict:
        deadline = deadline or time.monotonic() + self.timeout_s
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise MeasurementError("QEMU did not answer on its QMP socket")
            data = self.sock.recv(65536)
            if not data:
                raise MeasurementError("QEMU closed its QMP socket (it exited)")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command: str, arguments: dict | None = None, fds: list[int] | None = None):
        """Run a command; its "return" value, or MeasurementError with QEMU's own words."""
        data = json.dumps({"execute": command, **({"arguments": arguments} if arguments else {})}).encode()
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.sendall(data)
        while True:
            reply = self._message()
            if "event" in reply:
                self.events.append(reply)
            elif "error" in reply:
                raise MeasurementError(f"QEMU refused {command}: {reply['error'].get('desc', reply['error'])}")
            else:
                return reply.get("return")

    def wait_event(self, name: str, timeout_s: float, match=lambda data: True) -> dict:
        """The first event called name (seen already, or to come) whose data matches."""
        deadline = time.monotonic() + timeout_s
        while True:
            for event in self.events:
                if event["event"] == name and match(event.get("data", {})):
                    self.events.remove(event)
                    return event
            message = self._message(deadline)
            if "event" in message:
                self.events.append(message)
