/**
 * Idle TCP connections from a chosen local address (e.g. 127.0.0.2: all of 127.0.0.0/8 is
 * loopback on Linux), for hostile-peer tests and the soak: sockets that connect and never send a
 * byte — handshake hogs on protocols with a handshake, idle clients on the others, idle HTTP
 * connections on the HTTP endpoint. node:net, because Bun.connect cannot bind a local address.
 */
import net from "node:net";

export interface IdleSockets {
  /** Connections that opened (a refused one may be reset before or right after it opens). */
  readonly opened: number;
  /** Connections the server has closed since (refused at accept or timed out). */
  closedByPeer(): number;
  close(): void;
}

/**
 * Opens `count` connections to 127.0.0.1:port from `localAddress`, in parallel batches; loopback
 * only. `read`: whether they read (and discard) what the gateway sends; false = never read.
 */
export async function openIdleSockets(port: number, count: number, localAddress = "127.0.0.2", host = "127.0.0.1", read = true): Promise<IdleSockets> {
  const sockets: net.Socket[] = [];
  let opened = 0;
  let closed = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const s = net.connect({ host, port, localAddress });
      sockets.push(s);
      const done = (): void => resolve();
      s.once("connect", () => {
        opened++;
        done();
      });
      s.once("error", done);
      s.once("close", () => {
        closed++;
        done();
      });
      if (read) s.on("data", () => {});
      else s.pause();
      s.setTimeout(5000, done);
    });
  for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, one));
  return {
    opened,
    closedByPeer: () => closed,
    close: () => {
      for (const s of sockets) s.destroy();
    },
  };
}
