"""
A test client driving the REAL python-can socketcand interface (Debian's python3-can 4.1, run
with /usr/bin/python3): can.interface.Bus(interface="socketcand", host, port, channel) performs
python-can's own handshake, then a reader thread prints every received message and the main
thread sends the messages it is told to on stdin (python_can_line_client.py). Line protocol
(one line each, stdout flushed):

  out: "ready"                          the Bus constructor returned (handshake done)
  out: "error <text>"                   the Bus constructor raised (then exit 2)
  out: "rx <ID hex> <DATA hex or ->"    one received message
  out: "sent <n>"                       n messages sent so far
  in:  "send <ID hex> <ext 0|1> <DATA hex or ->"
  in:  "quit" (or EOF)                  shut the bus down and exit

Usage: socketcand-python-client.py PORT CHANNEL
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in test/helpers
import can
from python_can_line_client import emit, open_bus, serve


def describe(msg):
    return "%X %s" % (msg.arbitration_id, bytes(msg.data).hex().upper() or "-")


def message(words):
    data = b"" if words[3] == "-" else bytes.fromhex(words[3])
    return can.Message(arbitration_id=int(words[1], 16), is_extended_id=words[2] == "1", data=data)


def main():
    port = int(sys.argv[1])
    channel = sys.argv[2]
    bus = open_bus(lambda: can.interface.Bus(interface="socketcand", host="127.0.0.1", port=port, channel=channel))
    emit("ready")
    serve(bus, describe, message)


main()
