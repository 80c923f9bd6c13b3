/**
 * `GET /capture.pcap[?filter=…][&bus=NAME]`: a live pcap stream of one bus for Wireshark or tshark
 * (`curl -N …/capture.pcap | wireshark -k -i -`); the first bus unless `bus` names another, so
 * with one bus it is exactly go-ampio-server-era can-server's stream. `GET /capture.pcapng[?bus=A,B]`:
 * several buses (default every bus) in one pcapng stream, one interface per bus named after it,
 * so Wireshark keeps them apart. Each stream is a hub client (CaptureStream) of every bus it
 * captures while its reader is connected, and holds a slot of -http-max-streams until it ends.
 */
import type { Hub } from "../hub/hub.ts";
import type { Logger } from "../ops/log.ts";
import { requestRemote, type HttpRoute } from "../ops/http.ts";
import type { HttpStreamLimit } from "../net/http-streams.ts";
import type { ConsumerCounters } from "./counters.ts";
import { IdFilter, IdFilterError } from "./filter.ts";
import { CaptureStream, PCAP_FORMAT, pcapngFormat } from "./stream.ts";

/** A bus a capture can show (src/gateway.ts Bus). */
export interface CaptureBus {
  readonly name: string;
  /** StampedFrame.bus of its frames. */
  readonly index: number;
  readonly hub: Pick<Hub, "attach" | "detach">;
}

export type CaptureKind = "pcap" | "pcapng";

/** Frames a capture stream holds for a slow reader: about one second of a saturated 1 Mbit/s bus. */
export const CAPTURE_QUEUE_FRAMES = 8192;

export interface CaptureRouteDeps {
  readonly hub: Hub;
  /** Every bus, in order (Gateway.buses); absent: only `hub`, named can0. */
  readonly buses?: readonly CaptureBus[];
  readonly log: Logger;
  readonly counters: ConsumerCounters;
  /** Ids in the hub's client id space (shared with TCP sessions). */
  readonly allocateId: () => number;
  readonly captureQueueFrames?: number;
  /** -http-max-streams, shared by capture streams and dashboard WebSockets. */
  readonly streams: HttpStreamLimit;
}

/** The buses `?bus=A,B` names (deduplicated, in bus order), or the reason to refuse the request. */
export function selectCaptureBuses(all: readonly CaptureBus[], param: string | null, kind: CaptureKind): readonly CaptureBus[] | string {
  const names = (param ?? "").split(",").map((n) => n.trim()).filter((n) => n !== "");
  const unknown = names.find((n) => !all.some((b) => b.name === n));
  if (unknown !== undefined) return `unknown bus "${unknown.slice(0, 40)}"; buses: ${all.map((b) => b.name).join(", ")}`;
  const chosen = names.length === 0 ? (kind === "pcap" ? all.slice(0, 1) : all) : all.filter((b) => names.includes(b.name));
  if (kind === "pcap" && chosen.length > 1) return "/capture.pcap carries one bus; use /capture.pcapng for several (one interface per bus)";
  return chosen;
}

export function captureRoute(deps: CaptureRouteDeps, kind: CaptureKind = "pcap"): HttpRoute {
  const all: readonly CaptureBus[] = deps.buses ?? [{ name: "can0", index: 0, hub: deps.hub }];
  return (req, server) => {
    if (req.method !== "GET") return new Response("method not allowed\n", { status: 405, headers: { allow: "GET" } });
    let filter: IdFilter;
    const params = new URL(req.url).searchParams;
    try {
      filter = IdFilter.parse(params.get("filter") ?? "");
    } catch (e) {
      if (e instanceof IdFilterError) return new Response(`${e.message}\n`, { status: 400 });
      throw e;
    }
    const buses = selectCaptureBuses(all, params.get("bus"), kind);
    if (typeof buses === "string") return new Response(`${buses}\n`, { status: 400 });
    const remote = requestRemote(req, server);
    const slot = deps.streams.admit("capture", remote);
    if (slot instanceof Response) return slot;
    // The slot is held until the stream ends: reader gone (abort, cancel), kicked or shut down.
    const stream = new CaptureStream({
      id: deps.allocateId(),
      remote,
      queueFrames: deps.captureQueueFrames ?? CAPTURE_QUEUE_FRAMES,
      filter,
      format: kind === "pcap" ? PCAP_FORMAT : pcapngFormat(buses),
      counters: deps.counters,
      closed: (s) => {
        slot.release();
        for (const b of buses) b.hub.detach(s);
        deps.log.info("capture_ended", { conn_id: s.id, remote: s.remote, frames: s.txFrames, dropped: s.dropped });
      },
    });
    req.signal.addEventListener("abort", () => stream.end(), { once: true });
    // A capture is quiet while the bus is: Bun.serve's idle timeout (10 s) would cut it on a
    // silent bus. Lifted for this request only; idle connections that are not streams keep it.
    server.timeout(req, 0);
    for (const b of buses) b.hub.attach(stream);
    const busField = all.length > 1 || kind === "pcapng" ? { bus: buses.map((b) => b.name).join(",") } : {};
    deps.log.info("capture_started", { conn_id: stream.id, remote, filter: filter.toString() || "all", ...busField });
    // A reader already gone never fires "abort" again.
    if (req.signal.aborted) stream.end();
    return new Response(stream.body, {
      headers: {
        "content-type": kind === "pcap" ? "application/vnd.tcpdump.pcap" : "application/x-pcapng",
        "content-disposition": `inline; filename="can-server.${kind}"`,
        "cache-control": "no-store",
      },
    });
  };
}
