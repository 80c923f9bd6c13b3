/**
 * `GET /capture.pcap[?filter=…]`: a live pcap stream of the bus for Wireshark or tshark
 * (`curl -N …/capture.pcap | wireshark -k -i -`). Each stream is a hub client (CaptureStream)
 * while its reader is connected, and holds a slot of -http-max-streams until it ends.
 */
import type { Hub } from "../hub/hub.ts";
import type { Logger } from "../ops/log.ts";
import { requestRemote, type HttpRoute } from "../ops/http.ts";
import type { HttpStreamLimit } from "../net/http-streams.ts";
import type { ConsumerCounters } from "./counters.ts";
import { IdFilter, IdFilterError } from "./filter.ts";
import { CaptureStream } from "./stream.ts";

/** Frames a capture stream holds for a slow reader: about one second of a saturated 1 Mbit/s bus. */
export const CAPTURE_QUEUE_FRAMES = 8192;

export interface CaptureRouteDeps {
  readonly hub: Hub;
  readonly log: Logger;
  readonly counters: ConsumerCounters;
  /** Ids in the hub's client id space (shared with TCP sessions). */
  readonly allocateId: () => number;
  readonly captureQueueFrames?: number;
  /** -http-max-streams, shared by capture streams and dashboard WebSockets. */
  readonly streams: HttpStreamLimit;
}

export function captureRoute(deps: CaptureRouteDeps): HttpRoute {
  return (req, server) => {
    if (req.method !== "GET") return new Response("method not allowed\n", { status: 405, headers: { allow: "GET" } });
    let filter: IdFilter;
    try {
      filter = IdFilter.parse(new URL(req.url).searchParams.get("filter") ?? "");
    } catch (e) {
      if (e instanceof IdFilterError) return new Response(`${e.message}\n`, { status: 400 });
      throw e;
    }
    const remote = requestRemote(req, server);
    const slot = deps.streams.admit("capture", remote);
    if (slot instanceof Response) return slot;
    // The slot is held until the stream ends: reader gone (abort, cancel), kicked or shut down.
    const stream = new CaptureStream({
      id: deps.allocateId(),
      remote,
      queueFrames: deps.captureQueueFrames ?? CAPTURE_QUEUE_FRAMES,
      filter,
      counters: deps.counters,
      closed: (s) => {
        slot.release();
        deps.hub.detach(s);
        deps.log.info("capture_ended", { conn_id: s.id, remote: s.remote, frames: s.txFrames, dropped: s.dropped });
      },
    });
    req.signal.addEventListener("abort", () => stream.end(), { once: true });
    // A capture is quiet while the bus is: Bun.serve's idle timeout (10 s) would cut it on a
    // silent bus. Lifted for this request only; idle connections that are not streams keep it.
    server.timeout(req, 0);
    deps.hub.attach(stream);
    deps.log.info("capture_started", { conn_id: stream.id, remote, filter: filter.toString() || "all" });
    // A reader already gone never fires "abort" again.
    if (req.signal.aborted) stream.end();
    return new Response(stream.body, {
      headers: {
        "content-type": "application/vnd.tcpdump.pcap",
        "content-disposition": 'inline; filename="can-server.pcap"',
        "cache-control": "no-store",
      },
    });
  };
}
