"""
A test client driving the REAL python-can socketcand interface (Debian's python3-can 4.1, run
with /usr/bin/python3): can.interface.Bus(interface="socketcand", host, port, channel) performs
python-can's own handshake, then a reader thread prints every received message and the main
thread sends the messages it is told to on stdin. Line protocol (one line each, stdout flushed):

  out: "ready"                          the Bus constructor returned (handshake done)
  out: "error <text>"                   the Bus constructor raised (then exit 2)
  out: "rx <ID hex> <DATA hex or ->"    one received message
  out: "sent <n>"                       n messages sent so far
  in:  "send <ID hex> <ext 0|1> <DATA hex or ->"
  in:  "quit" (or EOF)                  shut the bus down and exit

Usage: socketcand-python-client.py PORT CHANNEL
"""
import sys
import threading

import can

out_lock = threading.Lock()


def emit(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main():
    port = int(sys.argv[1])
    channel = sys.argv[2]
    try:
        bus = can.interface.Bus(interface="socketcand", host="127.0.0.1", port=port, channel=channel)
    except Exception as e:  # python-can raises CanError on any unexpected handshake reply
        emit("error " + str(e).replace("\n", " "))
        sys.exit(2)
    emit("ready")
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            msg = bus.recv(0.05)
            if msg is None:
                continue
            data = bytes(msg.data).hex().upper() or "-"
            emit("rx %X %s" % (msg.arbitration_id, data))

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
            data = b"" if words[3] == "-" else bytes.fromhex(words[3])
            bus.send(can.Message(arbitration_id=int(words[1], 16), is_extended_id=words[2] == "1", data=data))
            sent += 1
            emit("sent %d" % sent)
    stop.set()
    t.join(1)
    bus.shutdown()


main()
