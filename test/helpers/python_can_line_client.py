"""
What slcan-python-client.py and socketcand-python-client.py share: both drive a REAL python-can
Bus (Debian's python3-can 4.1, /usr/bin/python3) and speak one line protocol with the test on
stdout/stdin (stdout flushed after every line):

  out: "error <text>"     the Bus constructor raised (then exit 2)
  out: "rx <message>"     one received message, as the script's describe() renders it
  out: "sent <n>"         n messages sent so far
  in:  "send <words>"     a message for bus.send, as the script's message() builds it
  in:  "quit" (or EOF)    Bus.shutdown() and exit

The scripts print their own "ready" line. Imported from the scripts' own folder (sys.path[0]).
"""
import sys
import threading

out_lock = threading.Lock()


def emit(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def open_bus(make):
    """Returns make()'s Bus; if it raises, prints "error <text>" and exits 2."""
    try:
        return make()
    except Exception as e:  # python-can raises CanError on an unexpected reply
        emit("error " + str(e).replace("\n", " "))
        sys.exit(2)


def serve(bus, describe, message):
    """A reader thread prints every received message; the main thread sends what stdin asks."""
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            msg = bus.recv(0.05)
            if msg is None:
                continue
            emit("rx " + describe(msg))

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
            bus.send(message(words))
            sent += 1
            emit("sent %d" % sent)
    stop.set()
    t.join(1)
    bus.shutdown()
