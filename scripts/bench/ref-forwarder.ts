/**
 * Near-limit reference forwarder on the gateway's own runtime, for scripts/bench/serial-ref.ts:
 * pty → cannelloni TCP in one read loop, no hub, no queues, no session. It reads the pty the way
 * SerialBackend does (`Bun.file(fd).stream()`), cuts Ampio adapter frames, encodes each chunk's
 * frames as one cannelloni buffer and writes it to every client that sent its hello. What it
 * costs is Bun's floor for this path; what can-server adds on top of it is ours. Loopback only.
 * Prints "port N" once listening; exits when stdin closes. A short write is counted, not retried
 * (the reference only runs below the rate where that happens).
 *
 *   bun scripts/bench/ref-forwarder.ts /path/to/pty
 */
import fs from "node:fs";
import type { Socket } from "bun";

const device = process.argv[2];
if (!device) {
  console.error("usage: ref-forwarder.ts PTY");
  process.exit(2);
}
const HELLO = new TextEncoder().encode("CANNELLONIv1");
const ready = new Set<Socket<{ hello: number }>>();
let shorts = 0;

const server = Bun.listen<{ hello: number }>({
  hostname: "127.0.0.1",
  port: 0,
  socket: {
    open(s) {
      s.data = { hello: 0 };
      s.setNoDelay(true);
      s.write(HELLO);
    },
    data(s, d) {
      s.data.hello += d.length;
      if (s.data.hello >= 12) ready.add(s);
    },
    close(s) {
      ready.delete(s);
    },
    error(s) {
      ready.delete(s);
    },
  },
});
process.stdout.write(`port ${server.port}\n`);

const fd = fs.openSync(device, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
const reader = Bun.file(fd).stream().getReader();
let pend = new Uint8Array(0);

void (async () => {
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    const chunk = r.value;
    const buf = pend.length ? concat(pend, chunk) : chunk;
    const out = new Uint8Array(Math.ceil(buf.length / 16) * 13 + 13);
    let p = 0;
    let o = 0;
    while (buf.length - p >= 3) {
      if (buf[p] !== 0x2d || buf[p + 1] !== 0xd4) {
        p++;
        continue;
      }
      const len = buf[p + 2]!;
      if (len < 5 || len > 13) {
        p++;
        continue;
      }
      if (buf.length - p < 3 + len) break;
      let sum = 0x2d + len;
      for (let i = 3; i < 2 + len; i++) sum += buf[p + i]!;
      if ((sum & 0xff) !== buf[p + 2 + len]) {
        p++;
        continue;
      }
      const dlc = len - 5;
      out[o] = buf[p + 3]! | 0x80;
      out[o + 1] = buf[p + 4]!;
      out[o + 2] = buf[p + 5]!;
      out[o + 3] = buf[p + 6]!;
      out[o + 4] = dlc;
      out.set(buf.subarray(p + 7, p + 7 + dlc), o + 5);
      o += 5 + dlc;
      p += 3 + len;
    }
    pend = buf.slice(p);
    if (o === 0) continue;
    const bytes = out.subarray(0, o);
    for (const s of ready) if (s.write(bytes) !== o) shorts++;
  }
})();

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const m = new Uint8Array(a.length + b.length);
  m.set(a);
  m.set(b, a.length);
  return m;
}

for await (const _ of console) {
  // commands are ignored; the loop ends when stdin closes
}
console.error(`ref-forwarder.ts: ${shorts} short writes`);
process.exit(0);
