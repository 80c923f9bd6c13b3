"""
A test client driving the REAL python-can slcan interface (Debian's python3-can 4.1, run with
/usr/bin/python3) over TCP: can.interface.Bus(interface="slcan", channel="socket://127.0.0.1:PORT",
bitrate=...) opens the socket through pyserial's socket:// URL handler, sleeps its 2-second
start-up pause, then writes its own C / Sn / O sequence. A reader thread prints every received
message; the main thread sends what it is told to on stdin (python_can_line_client.py). Line
protocol (stdout flushed):

  out: "ready <seconds the Bus constructor took>"
  out: "error <text>"                         the Bus constructor raised (then exit 2)
  out: "rx <ID hex> <ext 0|1> <rtr 0|1> <dlc> <DATA hex or ->"
  out: "sent <n>"
  in:  "send <ID hex> <ext 0|1> <rtr 0|1> <dlc> <DATA hex or ->"
  in:  "quit" (or EOF)                        Bus.shutdown() (writes C) and exit

Usage: slcan-python-client.py PORT BITRATE
"""
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in test/helpers
import can
from python_can_line_client import emit, open_bus, serve


def describe(msg):
    data = bytes(msg.data).hex().upper() or "-"
    return "%X %d %d %d %s" % (msg.arbitration_id, int(msg.is_extended_id), int(msg.is_remote_frame), msg.dlc, data)


def message(words):
    data = b"" if words[5] == "-" else bytes.fromhex(words[5])
    return can.Message(
        arbitration_id=int(words[1], 16),
        is_extended_id=words[2] == "1",
        is_remote_frame=words[3] == "1",
        dlc=int(words[4]),
        data=data,
    )


def main():
    port = int(sys.argv[1])
    bitrate = int(sys.argv[2])
    t0 = time.monotonic()
    bus = open_bus(lambda: can.interface.Bus(interface="slcan", channel="socket://127.0.0.1:%d" % port, bitrate=bitrate))
    emit("ready %.3f" % (time.monotonic() - t0))
    serve(bus, describe, message)


main()
