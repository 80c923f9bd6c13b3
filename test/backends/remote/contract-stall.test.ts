/**
 * cannelloni-client runs the whole backend transmit contract, the stall cases included, against a
 * far end that can stop reading: test/helpers/stalling-cannelloni-server.py (python, its own
 * cannelloni decoder; a stand-in for a real server only in that it can be told to stop reading).
 * Its receive buffer is small, so when it stops reading TCP pushes back on the backend after a
 * few KiB and the backend really holds accepted frames it cannot write. Unplugging kills the
 * server; replugging starts it again on the same port.
 */
import type { Subprocess } from "bun";
import { RemoteBackend } from "../../../src/backends/remote/remote-backend.ts";
import { cannelloniClientWire } from "../../../src/backends/remote/cannelloni-wire.ts";
import { CAN_EFF_FLAG, CAN_RTR_FLAG, type CanFrame, dataFrame } from "../../../src/can/frame.ts";
import { memoryLogger } from "../../../src/ops/log.ts";
import { Stats } from "../../../src/ops/stats.ts";
import { waitFor } from "../../helpers/pty.ts";
import { recordingListener, TxLog } from "../../helpers/tx-request.ts";
import { type BackendFixture, FILLER_ID_BASE, isFiller, runBackendContract } from "../contract.ts";

const SCRIPT = new URL("../../helpers/stalling-cannelloni-server.py", import.meta.url).pathname;

/** The python far end: frames it decoded, and pause/resume. */
class StallingServer {
  readonly frames: CanFrame[] = [];
  port = 0;
  private proc: Subprocess<"pipe", "pipe", "inherit"> | null = null;
  private acks = 0;

  async start(port = 0): Promise<void> {
    const proc = Bun.spawn(["python3", SCRIPT, String(port)], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
    this.proc = proc;
    let resolvePort!: (p: number) => void;
    const ready = new Promise<number>((r) => (resolvePort = r));
    void (async () => {
      let buf = "";
      const dec = new TextDecoder();
      for await (const chunk of proc.stdout) {
        buf += dec.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const w = line.split(" ");
          if (w[0] === "port") resolvePort(Number(w[1]));
          else if (w[0] === "ack") this.acks++;
          else if (w[0] === "frame") this.frames.push(toFrame(w));
        }
      }
    })();
    this.port = await ready;
  }

  async command(cmd: "pause" | "resume"): Promise<void> {
    if (this.proc === null) return; // unplugged: a new server starts reading anyway
    const want = this.acks + 1;
    this.proc!.stdin.write(`${cmd}\n`);
    this.proc!.stdin.flush();
    await waitFor(() => this.acks >= want, 5000, `ack of ${cmd}`);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (p === null) return;
    p.kill("SIGKILL");
    await p.exited;
  }
}

function toFrame(w: string[]): CanFrame {
  const canId = Number.parseInt(w[1]!, 16) >>> 0;
  const data = w[2] === "-" ? new Uint8Array(0) : Uint8Array.from(Buffer.from(w[2]!, "hex"));
  if (w[3] === "fd") return { canId, len: data.length, data, fd: true, fdFlags: Number(w[4]) };
  const rtr = (canId & CAN_RTR_FLAG) !== 0;
  return { canId, len: rtr ? Number(w[5]) : data.length, data, fd: false, fdFlags: 0 };
}

const servers: StallingServer[] = [];
const backends: RemoteBackend[] = [];

runBackendContract({
  name: "cannelloni-client (far end that can stop reading)",
  carries: { rtr: false, fd: true },
  settleMs: 50,
  canStall: true,
  async open({ fd }): Promise<BackendFixture> {
    const server = new StallingServer();
    servers.push(server);
    await server.start();
    const stats = new Stats();
    const backend = new RemoteBackend({
      host: "127.0.0.1",
      port: server.port,
      wire: cannelloniClientWire,
      fd,
      stats,
      log: memoryLogger("debug").log,
      reconnect: { initialMs: 20, maxMs: 200, factor: 2 },
    });
    backends.push(backend);
    const listener = recordingListener();
    await backend.start(listener);
    await waitFor(() => backend.up, 10_000, "backend up");
    let filler = 0;
    return {
      backend,
      listener,
      busFrames: () => server.frames.filter((f) => !isFiller(f)),
      unplug: async () => {
        await server.stop();
        await waitFor(() => !backend.up, 10_000, "backend down");
      },
      replug: async () => {
        await server.start(server.port);
        await waitFor(() => backend.up, 10_000, "backend up");
      },
      stall: async () => {
        await server.command("pause");
        const fills = new TxLog();
        const deadline = Date.now() + 20_000;
        // Pushed back for good: fillers wait, and none was written for 200 ms. A first partial
        // write alone is not enough — on a loaded machine the far end's kernel can still open its
        // window a little later, and frames sent just after stall() would then go out.
        for (;;) {
          while (backend.txStalls === 0 || fills.with("pending").length === 0) {
            if (Date.now() > deadline) throw new Error("TCP never pushed back");
            for (let i = 0; i < 256; i++) {
              const f = dataFrame(FILLER_ID_BASE + (filler++ & 0xffff), [1, 2, 3, 4, 5, 6, 7, 8], true);
              if (backend.send(fills.request(f)) !== "accepted") break;
            }
            await Bun.sleep(1);
          }
          const sent = fills.with("sent").length;
          await Bun.sleep(200);
          if (fills.with("sent").length === sent && fills.with("pending").length > 0) break;
          if (Date.now() > deadline) throw new Error("TCP never stayed pushed back");
        }
      },
      unstall: () => server.command("resume"),
    };
  },
  async release() {
    for (const b of backends.splice(0)) await b.stop();
    for (const s of servers.splice(0)) await s.stop();
  },
});

// CAN_EFF_FLAG is part of the id the far end prints; keep the import honest for readers.
void CAN_EFF_FLAG;
