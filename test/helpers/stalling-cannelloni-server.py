#!/usr/bin/env python3
"""A cannelloni TCP server that can stop reading, for the remote backend's transmit contract.

Plays the far end of `-backend cannelloni-client` the way a real cannelloni server or a slow
site would: it sends the CANNELLONIv1 hello, checks the client's, then decodes the frames it
receives (its own decoder, independent of src/) and prints each as `frame ID DATA FLAGS` on
stdout. Commands on stdin: `pause` stops reading (the kernel receive buffer, made small with
SO_RCVBUF, fills and TCP pushes back on the gateway), `resume` reads again. The first line it
prints is `port N`. Loopback only; exits when stdin closes.
"""
import select
import socket
import sys
import threading

HELLO = b"CANNELLONIv1"
port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
paused = threading.Event()
done = threading.Event()


def control():
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "pause":
            paused.set()
        elif cmd == "resume":
            paused.clear()
        print(f"ack {cmd}", flush=True)
    done.set()


def serve(conn):
    conn.sendall(HELLO)
    buf = b""
    got_hello = False
    while not done.is_set():
        if paused.is_set():
            done.wait(0.005)
            continue
        ready, _, _ = select.select([conn], [], [], 0.01)
        if not ready:
            continue
        try:
            chunk = conn.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        buf += chunk
        if not got_hello:
            if len(buf) < len(HELLO):
                continue
            if buf[: len(HELLO)] != HELLO:
                print("error bad hello", flush=True)
                return
            buf = buf[len(HELLO):]
            got_hello = True
        while len(buf) >= 5:
            can_id = int.from_bytes(buf[0:4], "big")
            length = buf[4]
            fd = length & 0x80
            n = length & 0x7F
            head = 6 if fd else 5
            rtr = (can_id & 0x40000000) != 0 and not fd
            body = 0 if rtr else n
            if len(buf) < head + body:
                break
            flags = buf[5] if fd else 0
            data = buf[head : head + body]
            print(f"frame {can_id:08x} {data.hex() or '-'} {'fd' if fd else 'classic'} {flags} {n}", flush=True)
            buf = buf[head + body :]


threading.Thread(target=control, daemon=True).start()
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
# A small receive buffer (inherited by accepted sockets): pausing pushes back after a few KiB.
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
ls.bind(("127.0.0.1", port))
ls.listen(4)
print(f"port {ls.getsockname()[1]}", flush=True)
ls.settimeout(0.05)
while not done.is_set():
    try:
        conn, _ = ls.accept()
    except socket.timeout:
        continue
    serve(conn)
    conn.close()
