/**
 * The dashboard's WebSocket plumbing: a route that upgrades (`server.upgrade(req, { data })`)
 * hands in the object that serves that socket (a WsPeer), and `websocket` routes each socket
 * event to it, so the HTTP endpoint (src/ops/http.ts) stays ignorant of what runs on a socket.
 */
import type { ServerWebSocket, WebSocketHandler } from "bun";

/** One upgraded WebSocket's behaviour. */
export interface WsPeer {
  open(ws: ServerWebSocket<WsPeer>): void;
  message(ws: ServerWebSocket<WsPeer>, message: string | Uint8Array): void;
  drain(ws: ServerWebSocket<WsPeer>): void;
  close(ws: ServerWebSocket<WsPeer>, code: number, reason: string): void;
}

/** Largest message a browser may send us (commands, a frame to send). */
const WS_MAX_PAYLOAD = 16 * 1024;
/** Bun closes a socket whose unsent output grows past this; consumers stay well below it. */
const WS_BACKPRESSURE_LIMIT = 4 * 1024 * 1024;

export const websocket: WebSocketHandler<WsPeer> = {
  maxPayloadLength: WS_MAX_PAYLOAD,
  backpressureLimit: WS_BACKPRESSURE_LIMIT,
  closeOnBackpressureLimit: true,
  idleTimeout: 120,
  open: (ws) => ws.data.open(ws),
  message: (ws, m) => ws.data.message(ws, typeof m === "string" ? m : new Uint8Array(m)),
  drain: (ws) => ws.data.drain(ws),
  close: (ws, code, reason) => ws.data.close(ws, code, reason),
};
