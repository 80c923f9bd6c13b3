"""
Child of test/ops/socketcand-beacon.test.ts, run with /usr/bin/python3 inside the test's own
network namespace (`ip netns exec`). Waits for a socketcand discovery beacon on UDP 42000, then
connects to what it advertised with python-can's REAL socketcand interface (the `< hi >`,
`< open BUS >`, `< rawmode >` handshake), so a wrong host, port or bus name fails here.

Discovery uses python-can's own can.interfaces.socketcand.socketcand.detect_beacon() when the
installed python-can has it (4.2+). Debian's python3-can 4.1 predates it; then the same steps
that function takes are done here (bind 0.0.0.0:42000, one recv(1024), ElementTree, the <Bus>
names and the <URL> parsed with urllib), so the beacon is held to the same parser either way.

Prints one JSON line: {"detector": "python-can"|"same-steps", "configs": [...],
"raw": "<datagram text or null>", "connected": true|false, "error": "..."}.
Usage: socketcand-beacon-receiver.py TIMEOUT_MS
"""
import json
import select
import socket
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

import can


def detect_same_steps(timeout_ms):
    """detect_beacon()'s steps (python-can 4.2, can/interfaces/socketcand/socketcand.py)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("", 42000))
        end = time.time() + timeout_ms / 1000
        while time.time() < end:
            ready, _, _ = select.select([sock], [], [], 0.2)
            if not ready:
                continue
            raw = sock.recv(1024).decode("utf-8")
            try:
                root = ET.fromstring(raw)
            except ET.ParseError:
                continue
            if root.tag != "CANBeacon":
                continue
            devs, host, port = [], None, None
            for child in root:
                if child.tag == "Bus":
                    devs.append(child.attrib["name"])
                elif child.tag == "URL":
                    url = urllib.parse.urlparse(child.text)
                    host, port = url.hostname, url.port
            if not devs or host is None or port is None:
                continue
            configs = [{"interface": "socketcand", "host": host, "port": port, "channel": c} for c in devs]
            return configs, raw
    return [], None


def main():
    timeout_ms = int(sys.argv[1])
    result = {"connected": False}
    try:
        from can.interfaces.socketcand.socketcand import detect_beacon  # python-can >= 4.2

        result["detector"] = "python-can"
        result["configs"] = detect_beacon(timeout_ms)
        result["raw"] = None
    except ImportError:
        result["detector"] = "same-steps"
        result["configs"], result["raw"] = detect_same_steps(timeout_ms)
    if result["configs"]:
        cfg = result["configs"][0]
        try:
            bus = can.interface.Bus(interface="socketcand", host=cfg["host"], port=cfg["port"], channel=cfg["channel"])
            result["connected"] = True
            bus.shutdown()
        except Exception as e:  # python-can raises CanError on an unexpected handshake reply
            result["error"] = str(e)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


main()
