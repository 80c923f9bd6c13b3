/**
 * The HTTP endpoint's front door. Bun.serve (1.4.5) has no connection-level hook: `-allow` could
 * only be checked per request, so an idle connection from anyone held a descriptor until the
 * idle timeout, and at the fd limit Bun's accept loop spun on EMFILE (oven-sh/bun#32705) at up
 * to a whole core while /healthz timed out. So the public port is ours: a `Bun.listen` socket
 * that asks the admission layer (./admission.ts) at accept — `-allow`, the descriptor budget,
 * per-host and HTTP connection limits — and closes a refused connection before it costs
 * anything but the accept. An admitted connection is spliced, byte for byte and with TCP
 * backpressure both ways, to the real HTTP server on a loopback port (`127.0.0.1:<ephemeral>`).
 * The HTTP server learns the real peer from `peerOf(port)` (the splice's local port), and
 * refuses connections that did not come through here.
 *
 * A connection must send its first bytes within FIRST_BYTES_S (idle sockets that never ask for
 * anything are closed); after that the HTTP server's own idle timeout applies (and a capture
 * stream turns it off for itself).
 */
import type { Socket, TCPSocketListener } from "bun";
import type { Logger } from "../ops/log.ts";
import { WritePump } from "../server/write-pump.ts";
import type { Admission, Ticket } from "./admission.ts";

/** Seconds a new connection has to send its first request bytes. */
export const FIRST_BYTES_S = 10;

/** One direction of a splice: writes what the destination takes, pauses the source while it waits. */
class Pipe {
  private readonly pump: WritePump;
  private readonly queue: Uint8Array[] = [];

  constructor(
    to: { write(data: Uint8Array): number },
    private readonly source: () => { pause(): unknown; resume(): unknown } | null,
  ) {
    this.pump = new WritePump(to);
  }

  /** Whether everything sent has been written. */
  get idle(): boolean {
    return !this.pump.busy && this.queue.length === 0;
  }

  /** False once the destination is closed. */
  send(data: Uint8Array): boolean {
    if (this.pump.busy || this.queue.length > 0) {
      // Retained past this callback: copy (the runtime may reuse its read buffer).
      this.queue.push(data.slice());
      return true;
    }
    if (!this.pump.write(data)) return false;
    if (this.pump.busy) this.source()?.pause();
    return true;
  }

  /** The destination drained: write what waits, resume the source once all is written. */
  drain(): boolean {
    if (!this.pump.resume()) return false;
    while (!this.pump.busy && this.queue.length > 0) {
      if (!this.pump.write(this.queue.shift()!)) return false;
    }
    if (!this.pump.busy) this.source()?.resume();
    return true;
  }
}

interface FrontConn {
  readonly ticket: Ticket;
  readonly remote: string;
  upstream: Socket<UpstreamData> | null;
  /** Client bytes that arrived before the upstream connection opened (the source is paused). */
  readonly early: Uint8Array[];
  toUpstream: Pipe | null;
  toClient: Pipe | null;
  closed: boolean;
  sawBytes: boolean;
  /** The HTTP server closed its side: end the client once what it sent is written. */
  upstreamEnded: boolean;
}

interface ClientData {
  conn: FrontConn | null;
}

interface UpstreamData {
  conn: FrontConn;
  client: Socket<ClientData>;
}

export interface HttpFrontOptions {
  /** Where the public endpoint listens ("::", "0.0.0.0", "127.0.0.1", …) and its port (0 = ephemeral). */
  readonly hostname: string;
  readonly port: number;
  /** The HTTP server's loopback port. */
  readonly innerPort: number;
  readonly admission: Admission;
  readonly log: Logger;
}

export interface HttpFront {
  readonly hostname: string;
  readonly port: number;
  /** The real peer ("1.2.3.4:port", "[v6]:port") of the spliced connection with this local port. */
  peerOf(innerPeerPort: number): { address: string; remote: string } | undefined;
  stop(): void;
}

function remoteOf(s: Socket<ClientData>): string {
  const a = s.remoteAddress;
  return a.includes(":") ? `[${a}]:${s.remotePort}` : `${a}:${s.remotePort}`;
}

export function startHttpFront(opts: HttpFrontOptions): HttpFront {
  const { admission } = opts;
  const peers = new Map<number, { address: string; remote: string }>();
  const open = new Set<FrontConn>();

  const finish = (conn: FrontConn, client: Socket<ClientData>): void => {
    if (conn.closed) return;
    conn.closed = true;
    open.delete(conn);
    conn.ticket.release();
    const up = conn.upstream;
    if (up) {
      peers.delete(up.localPort);
      up.end();
    }
    client.end();
  };

  const connectUpstream = (conn: FrontConn, client: Socket<ClientData>): void => {
    Bun.connect<UpstreamData>({
      hostname: "127.0.0.1",
      port: opts.innerPort,
      data: { conn, client },
      socket: {
        open(up) {
          if (conn.closed) {
            up.end();
            return;
          }
          up.setNoDelay(true);
          conn.upstream = up;
          peers.set(up.localPort, { address: client.remoteAddress, remote: conn.remote });
          conn.toUpstream = new Pipe(up, () => (conn.closed ? null : client));
          conn.toClient = new Pipe(client, () => (conn.closed ? null : up));
          for (const chunk of conn.early.splice(0)) if (!conn.toUpstream.send(chunk)) return finish(conn, client);
          client.resume();
        },
        data(up, data) {
          if (!up.data.conn.toClient?.send(data)) finish(conn, client);
        },
        drain() {
          if (!conn.toUpstream?.drain()) finish(conn, client);
        },
        close() {
          // The response may still be on its way to a slow client: end after it is written.
          if (conn.toClient && !conn.toClient.idle && !conn.closed) {
            conn.upstreamEnded = true;
            return;
          }
          finish(conn, client);
        },
        error() {
          finish(conn, client);
        },
      },
    }).catch((e: unknown) => {
      opts.log.error("http_front_upstream_failed", { error: e instanceof Error ? e.message : String(e) });
      finish(conn, client);
    });
  };

  const listener: TCPSocketListener<ClientData> = Bun.listen<ClientData>({
    hostname: opts.hostname,
    port: opts.port,
    socket: {
      open(client) {
        client.data = { conn: null };
        const remote = remoteOf(client);
        const ticket = admission.admit("http", client.remoteAddress, false, { remote, protocol: "http" });
        if (typeof ticket === "string") {
          client.terminate();
          return;
        }
        const conn: FrontConn = { ticket, remote, upstream: null, early: [], toUpstream: null, toClient: null, closed: false, sawBytes: false, upstreamEnded: false };
        client.data.conn = conn;
        open.add(conn);
        client.setNoDelay(true);
        client.timeout(FIRST_BYTES_S);
        connectUpstream(conn, client);
      },
      data(client, data) {
        const conn = client.data.conn;
        if (!conn || conn.closed) return;
        if (!conn.sawBytes) {
          conn.sawBytes = true;
          // From here the HTTP server's idle timeout rules (a capture stream lifts it for itself).
          client.timeout(0);
        }
        if (conn.toUpstream) {
          if (!conn.toUpstream.send(data)) finish(conn, client);
          return;
        }
        conn.early.push(data.slice());
        client.pause();
      },
      drain(client) {
        const conn = client.data.conn;
        if (!conn || conn.closed) return;
        if (!conn.toClient?.drain() || (conn.upstreamEnded && conn.toClient.idle)) finish(conn, client);
      },
      timeout(client) {
        const conn = client.data.conn;
        if (conn) finish(conn, client);
      },
      close(client) {
        const conn = client.data?.conn;
        if (conn) finish(conn, client);
      },
      error(client) {
        const conn = client.data?.conn;
        if (conn) finish(conn, client);
      },
    },
  });

  return {
    hostname: listener.hostname,
    port: listener.port,
    peerOf: (port) => peers.get(port),
    stop() {
      listener.stop(true);
      for (const conn of [...open]) {
        conn.closed = true;
        conn.ticket.release();
        conn.upstream?.terminate();
      }
      open.clear();
      peers.clear();
    },
  };
}
