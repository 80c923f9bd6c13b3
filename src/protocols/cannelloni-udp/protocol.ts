/**
 * cannelloni UDP (format v2) as a DatagramProtocol for the server's UDP peers
 * (src/server/udp-peer.ts): the pure codec of ./codec.ts behind the registry's interface.
 */
import type { CanFrame } from "../../can/frame.ts";
import type { DatagramProtocol } from "../protocol.ts";
import { CANNELLONI_UDP_DEFAULT_PORT, CANNELLONI_UDP_HEADER_BYTES, decodeDatagram, encodeDatagrams, SeqTracker } from "./codec.ts";

export const cannelloniUdp: DatagramProtocol = {
  name: "cannelloni-udp",
  defaultPort: CANNELLONI_UDP_DEFAULT_PORT,
  // cannelloni forwards whatever its SocketCAN socket reads, error frames included; FD only with -fd.
  accepts: (frame: CanFrame, fd: boolean) => !frame.fd || fd,
  encode: (frames, seq, mtu, ipv6) => encodeDatagrams(frames, seq, mtu, { family: ipv6 ? "ipv6" : "ipv4" }),
  decode: decodeDatagram,
  // The header's count (codec.ts): `version | op_code | seq_no | count u16 BE`.
  frameCount: (d: Uint8Array) => (d.length >= CANNELLONI_UDP_HEADER_BYTES ? (d[3]! << 8) | d[4]! : 0),
  newSeqTracker: () => new SeqTracker(),
};
