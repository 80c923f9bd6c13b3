"""
A test client driving the REAL python-can slcan interface (Debian's python3-can 4.1, run with
/usr/bin/python3) over TCP: can.interface.Bus(interface="slcan", channel="socket://127.0.0.1:PORT",
bitrate=...) opens the socket through pyserial's socket:// URL handler, sleeps its 2-second
start-up pause, then writes its own C / Sn / O sequence. A reader thread prints every received
message; the main thread sends what it is told to on stdin. Line protocol (stdout flushed):

  out: "ready <seconds the Bus constructor took>"
  out: "error <text>"                         the Bus constructor raised (then exit 2)
  out: "rx <ID hex> <ext 0|1> <rtr 0|1> <dlc> <DATA hex or ->"
  out: "sent <n>"
  in:  "send <ID hex> <ext 0|1> <rtr 0|1> <dlc> <DATA hex or ->"
  in:  "quit" (or EOF)                        Bus.shutdown() (writes C) and exit

Usage: slcan-python-client.py PORT BITRATE
"""
import sys
import threading
import time

import can

out_lock = threading.Lock()


def emit(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main():
    port = int(sys.argv[1])
    bitrate = int(sys.argv[2])
    t0 = time.monotonic()
    try:
        bus = can.interface.Bus(interface="slcan", channel="socket://127.0.0.1:%d" % port, bitrate=bitrate)
    except Exception as e:
        emit("error " + str(e).replace("\n", " "))
        sys.exit(2)
    emit("ready %.3f" % (time.monotonic() - t0))
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            msg = bus.recv(0.05)
            if msg is None:
                continue
            data = bytes(msg.data).hex().upper() or "-"
            emit("rx %X %d %d %d %s" % (msg.arbitration_id, int(msg.is_extended_id), int(msg.is_remote_frame), msg.dlc, data))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sent = 0
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "send":
            data = b"" if words[5] == "-" else bytes.fromhex(words[5])
            bus.send(
                can.Message(
                    arbitration_id=int(words[1], 16),
                    is_extended_id=words[2] == "1",
                    is_remote_frame=words[3] == "1",
                    dlc=int(words[4]),
                    data=data,
                )
            )
            sent += 1
            emit("sent %d" % sent)
    stop.set()
    t.join(1)
    bus.shutdown()


main()
