/**
 * The SocketCAN backend: a CAN_RAW socket on a kernel interface (can0 on a Pi HAT, USB adapters
 * with kernel drivers, vcan for tests). Receiving happens in a worker thread (rx-worker.ts) that
 * blocks in recvmmsg and fills a shared ring; this thread sleeps in Atomics.waitAsync and decodes
 * the ring in bounded batches, yielding to the event loop after each (timers, HTTP and signals
 * keep running under a saturated bus). Transmitting follows the Backend contract (../backend.ts)
 * through tx-queue.ts: a frame is written non-blocking and counts as `sent()` once the kernel
 * confirms it was transmitted — the socket has CAN_RAW_RECV_OWN_MSGS, so its own frames come back
 * marked MSG_CONFIRM (docs/protocols.md §1); such a frame is a confirmation, never delivered as a
 * bus frame (the hub echoes the client's frame on sent()). Where the kernel refuses the option a
 * frame is sent() once written (logged once). A full device queue (EAGAIN/ENOBUFS, common on
 * MCP2515) parks frames in a short retry queue; frames waiting to be written plus frames waiting
 * for their confirmation are bounded ("busy" beyond it, `txReady()` once there is room), and a
 * frame never confirmed is lost("unconfirmed") after a timeout; error frames are refused. When the
 * interface goes down or vanishes, the backend reports itself down once, loses what waits to be
 * sent or confirmed (`lost("backend_down")`), closes the socket and reopens it with capped backoff
 * until the interface is back; the backoff starts small again only after the socket stayed up for
 * a while, so a flapping link is not reopened in a tight loop (the rules every backend shares:
 * ../link-state.ts). An interface that is up without
 * carrier (bus-off with restart-ms 0, a vxcan whose peer is down) counts as down too. Frames the
 * kernel drops because the receive buffer overflowed (this thread fell behind) are read from
 * SO_MEMINFO and counted. Only a kernel without SocketCAN is fatal. Classic frames only unless
 * `fd` is set (CAN_RAW_FD_FRAMES). */
import { existsSync, readFileSync } from "node:fs";
import type { CanFrame } from "../../can/frame.ts";
import type { Logger } from "../../ops/log.ts";
import type { Stats } from "../../ops/stats.ts";
import { BackendFatalError, commonTxRefusal, type Backend, type BusHealth, type BackendListener, type SendResult, type TxRequest } from "../backend.ts";
import type { BackoffOptions } from "../backoff.ts";
import { LinkState } from "../link-state.ts";
import { BusHealthTracker } from "../bus-health.ts";
import { CAN_ERR_MASK, isErrorFrame, readErrorFrame } from "./error-frames.ts";
import type { CanLinkInfo } from "./link-info.ts";
import { LinkInfoReader } from "./netlink.ts";
import { DEFAULT_SOCKETCAN_TX_QUEUE_LIMIT, DEFAULT_TX_CONFIRM_TIMEOUT_MS, TxQueue } from "./tx-queue.ts";
import { CANFD_FRAME_SIZE, decodeCanStruct } from "./can-struct.ts";
import {
  closeSocket,
  describeErrno,
  ERRNO,
  IFF_RUNNING,
  IFF_UP,
  interfaceFlags,
  interfaceMtu,
  MSG_CONFIRM,
  openCanSocket,
  sendFrame,
  SocketCanError,
  socketDrops,
} from "./ffi.ts";
import {
  createRxRing,
  H_ERRNO,
  H_READ,
  H_STATE,
  H_STOP,
  H_WRITE,
  RX_FAILED,
  RX_RUNNING,
  SLOT_FLAGS_OFFSET,
  SLOT_FRAME_OFFSET,
  SLOT_SIZE_OFFSET,
  slotOffset,
  type RxRing,
  type RxWorkerStart,
} from "./rx-ring.ts";

export interface SocketCanBackendOptions {
  /** Kernel interface name, e.g. "can0". */
  readonly iface: string;
  /** Enable CAN FD (CAN_RAW_FD_FRAMES): FD frames are received and may be sent. */
  readonly fd: boolean;
  readonly stats: Stats;
  readonly log: Logger;
  /**
   * Frames waiting for a full device queue to drain plus frames waiting for their transmit
   * confirmation (default 64); beyond it send() answers "busy".
   */
  readonly txQueueLimit?: number;
  /**
   * Count a frame as sent only once the kernel confirms its transmission (CAN_RAW_RECV_OWN_MSGS +
   * MSG_CONFIRM; default true). False, or a kernel that refuses the option: sent once written.
   */
  readonly txConfirm?: boolean;
  /** How long a written frame may wait for its confirmation before it is lost("unconfirmed") (default 2 s). */
  readonly txConfirmTimeoutMs?: number;
  /** Reopen delays after the interface went down or is missing (default 50 ms doubling to 1 s). */
  readonly reconnect?: BackoffOptions;
  /** Receive ring size in frames, a power of two (default 4096). */
  readonly rxRingSlots?: number;
  /** Kernel receive buffer requested (default 4 MiB). */
  readonly rcvBufBytes?: number;
  /** Longest a receive blocks before the worker looks at its stop flag (default 100 ms). */
  readonly rcvTimeoutMs?: number;
  /** The reconnect backoff starts small again only after a socket stayed up this long (default 1 s). */
  readonly stableUpMs?: number;
  /** How often the controller's netlink state is read (default 1 s; also soon after an error frame). */
  readonly healthPollMs?: number;
}

/**
 * What a SocketCAN bus reports of its health (Backend.health(), shown by /api/v1/buses/NAME): the
 * shared fields of ../backend.ts BusHealth, and what only SocketCAN knows.
 */
export interface SocketCanHealth extends BusHealth {
  readonly state: string;
  /** What last set the state: an error frame, netlink, or nothing yet. */
  readonly source: "error-frame" | "netlink" | "none";
  /** Date.now() of the last state change (0 = never). */
  readonly sinceMs: number;
  /** IFLA_INFO_KIND of the interface ("can" for a real controller, "vcan", …), "" if not read yet. */
  readonly kind: string;
  readonly samplePoint?: number;
  readonly restartMs?: number;
  /** The driver's own counts since the interface was created (can_device_stats), where it reports them. */
  readonly deviceStats?: NonNullable<CanLinkInfo["stats"]>;
}

/** One open socket and the worker reading it. */
interface Session {
  readonly fd: number;
  readonly ring: RxRing;
  readonly worker: Worker;
  readonly tx: TxQueue;
  /** The socket receives its own frames back (MSG_CONFIRM) and `tx` waits for them. */
  readonly confirming: boolean;
  /** Consumer counter (mirrors H_READ). */
  read: number;
  closing: boolean;
  /** closeSession gave up waiting for the worker and left the fd open (closed once it exits). */
  stuck: boolean;
  /** The kernel's cumulative drop count last seen (SO_MEMINFO); -1 if this kernel cannot say. */
  kernelDrops: number;
  /** Whether this session's first kernel drops were already logged. */
  dropsWarned: boolean;
  /** When the interface flags were last looked at (performance.now()). */
  linkCheckedAt: number;
}

const RX_BATCH = 64;
/** Most frames delivered per event-loop turn; the pump yields after each drain. */
const DRAIN_PER_TURN = 512;
const DEFAULT_STABLE_UP_MS = 1000;
/** Main-thread safety net: wake up this often even without a notify. */
const PUMP_TIMEOUT_MS = 1000;
/** How long stop() waits for the worker to leave its blocking receive. */
const WORKER_EXIT_TIMEOUT_MS = 5000;
/** How often a running session looks at the interface flags (carrier lost without ENETDOWN). */
const LINK_CHECK_MS = 1000;
/** net_device flag: the driver echoes sent frames itself, on TX-done (linux/if.h; SIOCGIFFLAGS only has the low 16 bits). */
const IFF_ECHO = 0x40000;
const DEFAULT_HEALTH_POLL_MS = 1000;
/** After an error frame, the netlink state is read again at most this often. */
const HEALTH_POLL_ON_ERROR_MS = 100;

/** rx-worker.ts's path inside a `bun build --compile` binary, relative to its embedded root. */
const COMPILED_WORKER_PATHS = ["backends/socketcan/rx-worker.js", "src/backends/socketcan/rx-worker.js", "rx-worker.js"];

/**
 * Where the receive worker's code is. From source it sits next to this file. In a compiled binary
 * every module is bundled into the main chunk, so `import.meta.url` no longer points here; the
 * worker is its own entrypoint under the embedded root (/$bunfs/root/, mirroring the entrypoints'
 * common folder), and is found there.
 */
export function rxWorkerSpecifier(): string {
  if (!import.meta.url.includes("/$bunfs/")) return new URL("./rx-worker.ts", import.meta.url).href;
  for (const rel of COMPILED_WORKER_PATHS) {
    const path = `${import.meta.dir}/${rel}`;
    if (existsSync(path)) return path;
  }
  throw new SocketCanError(
    "this binary was built without the SocketCAN receive worker: build with " +
      "`bun build --compile src/main.ts src/backends/socketcan/rx-worker.ts --outfile …`",
    0,
    true,
  );
}

export class SocketCanBackend implements Backend {
  readonly kind = "socketcan" as const;
  readonly fdCapable: boolean;

  private readonly iface: string;
  private readonly stats: Stats;
  private readonly log: Logger;
  private readonly txQueueLimit: number;
  private readonly txConfirm: boolean;
  private readonly txConfirmTimeoutMs: number;
  /** The transmit mode last logged ("" before the first open), so it is logged once and on changes. */
  private txModeLogged = "";
  private readonly rxRingSlots: number;
  private readonly rcvBufBytes: number;
  private readonly rcvTimeoutMs: number;
  /** Up/down, reconnect backoff with the stable-up reset, the busy → txReady latch. */
  private readonly link: LinkState;

  private listener: BackendListener | null = null;
  private session: Session | null = null;
  private mtuWarned = false;
  private workerSpecifier = "";
  /** The controller's state and error counts (error frames + netlink). */
  private readonly busHealth: BusHealthTracker;
  private readonly healthPollMs: number;
  private netlink: LinkInfoReader | null = null;
  private netlinkWarned = false;
  private linkKind = "";
  private lastCan: CanLinkInfo | null = null;
  private healthPolledAt = -Infinity;
  /** An error frame came in: read the netlink state soon. */
  private healthStale = false;
  private errFilterWarned = false;
  /** Sessions being torn down after a failure (stop() waits for them). */
  private readonly closing = new Set<Promise<void>>();

  constructor(options: SocketCanBackendOptions) {
    this.iface = options.iface;
    this.fdCapable = options.fd;
    this.stats = options.stats;
    this.log = options.log.child({ backend: "socketcan", iface: options.iface });
    this.txQueueLimit = options.txQueueLimit ?? DEFAULT_SOCKETCAN_TX_QUEUE_LIMIT;
    this.txConfirm = options.txConfirm ?? true;
    this.txConfirmTimeoutMs = options.txConfirmTimeoutMs ?? DEFAULT_TX_CONFIRM_TIMEOUT_MS;
    this.rxRingSlots = options.rxRingSlots ?? 4096;
    this.rcvBufBytes = options.rcvBufBytes ?? 4 * 1024 * 1024;
    this.rcvTimeoutMs = options.rcvTimeoutMs ?? 100;
    this.link = new LinkState({
      reconnect: options.reconnect ?? { initialMs: 50, maxMs: 1000, factor: 2 },
      stableUpMs: options.stableUpMs ?? DEFAULT_STABLE_UP_MS,
      stats: this.stats,
      log: this.log,
      name: "socketcan",
    });
    this.busHealth = new BusHealthTracker(this.log);
    this.healthPollMs = options.healthPollMs ?? DEFAULT_HEALTH_POLL_MS;
    this.stats.busHealth = this.busHealth;
  }

  /** The bus's health: controller state, error frames by class, error counters, link facts. */
  health(): SocketCanHealth {
    const h = this.busHealth.snapshot();
    const can = this.lastCan;
    const bt = can?.bitTiming ?? null;
    return {
      state: h.state,
      ...(h.txErrors !== null ? { txErrors: h.txErrors } : {}),
      ...(h.rxErrors !== null ? { rxErrors: h.rxErrors } : {}),
      restarts: h.restarts,
      busOff: h.busOffs,
      errorFrames: h.errors,
      ...(bt !== null ? { bitrate: bt.bitrate, samplePoint: bt.samplePoint / 1000 } : {}),
      source: h.source,
      sinceMs: h.sinceMs,
      kind: this.linkKind,
      ...(can?.restartMs != null ? { restartMs: can.restartMs } : {}),
      ...(can?.stats ? { deviceStats: can.stats } : {}),
    };
  }

  /**
   * The bit rate the interface really runs at, read once over netlink (start-up: the bus load and
   * the auto TX rate use it): a number for a real CAN device (kind "can") with its bit timing set,
   * else null and why (vcan has no bit rate).
   */
  interfaceBitrate(): { bitrate: number | null; detail: string } {
    try {
      const info = this.readLink();
      if (info === null) return { bitrate: null, detail: "netlink unavailable" };
      if (info.can === null) return { bitrate: null, detail: `interface kind ${info.kind || "unknown"} has no CAN bit timing` };
      if (info.can.bitTiming === null) return { bitrate: null, detail: "bit rate not configured on the interface" };
      return { bitrate: info.can.bitTiming.bitrate, detail: `ip link: ${info.can.bitTiming.bitrate} bit/s` };
    } catch (err) {
      return { bitrate: null, detail: errorMessage(err) };
    }
  }

  get up(): boolean {
    return this.link.up;
  }

  get downReason(): string {
    return this.link.downReason;
  }

  /** Times the socket was reopened after an outage. */
  get reconnects(): number {
    return this.link.reconnects;
  }

  async start(listener: BackendListener): Promise<void> {
    this.listener = listener;
    this.link.attach(listener);
    try {
      this.workerSpecifier = rxWorkerSpecifier();
      this.open();
    } catch (err) {
      if (err instanceof SocketCanError && err.fatal) {
        this.log.error("socketcan_fatal", { error: err.message });
        throw new BackendFatalError(err.message);
      }
      this.wentDown(errorMessage(err));
      this.scheduleReconnect();
    }
  }

  txRefusal(frame: CanFrame): string | null {
    return commonTxRefusal(frame, this.fdCapable);
  }

  send(req: TxRequest): SendResult {
    const session = this.session;
    if (!this.link.up || session === null) return "down";
    if (this.txRefusal(req.frame) !== null) return "unsupported";
    const result = session.tx.send(req);
    if (result === "busy") this.link.markBusy();
    return result;
  }

  async stop(): Promise<void> {
    this.link.stop();
    this.netlink?.close();
    this.netlink = null;
    const session = this.session;
    this.session = null;
    if (session !== null) await this.closeSession(session);
    await Promise.all([...this.closing]);
    this.log.debug("socketcan_stopped");
  }

  /** Opens the socket and starts the worker; throws SocketCanError (fatal or retryable). */
  private open(): void {
    const sock = openCanSocket(this.iface, {
      fd: this.fdCapable,
      rcvBufBytes: this.rcvBufBytes,
      rcvTimeoutMs: this.rcvTimeoutMs,
      recvOwnMsgs: this.txConfirm,
      errMask: CAN_ERR_MASK,
    });
    if (sock.errFilterErrno !== 0 && !this.errFilterWarned) {
      this.errFilterWarned = true;
      this.log.warn("socketcan_no_error_frames", { error: describeErrno(sock.errFilterErrno), meaning: "CAN_RAW_ERR_FILTER refused: the bus state comes from netlink only" });
    }
    let worker: Worker;
    let ring: RxRing;
    try {
      // The socket is bound first, so a link that goes down from here on is reported to it.
      this.pollHealth(true);
      const problem = linkStateProblem(this.iface, interfaceFlags(sock.fd, this.iface), this.busHealth.state);
      if (problem !== null) throw new SocketCanError(problem, ERRNO.ENETDOWN);
      if (this.fdCapable && !this.mtuWarned) {
        const mtu = interfaceMtu(sock.fd, this.iface);
        if (mtu !== -1 && mtu < CANFD_FRAME_SIZE) {
          this.mtuWarned = true;
          this.log.warn("socketcan_not_fd_capable", { mtu, hint: "interface MTU is not 72: CAN FD frames cannot be sent on it" });
        }
      }
      ring = createRxRing(this.rxRingSlots);
      worker = new Worker(this.workerSpecifier);
    } catch (err) {
      closeSocket(sock.fd);
      throw err;
    }
    const fd = sock.fd;
    const confirming = sock.recvOwnMsgsErrno === 0;
    this.logTxMode(confirming, sock.recvOwnMsgsErrno);
    const tx = new TxQueue({
      write: (struct, length) => sendFrame(fd, struct, length),
      failed: (errno) => this.writeFailed(session, errno),
      ready: () => this.link.txReady(),
      limit: this.txQueueLimit,
      stats: this.stats,
      log: this.log,
      confirm: confirming,
      confirmTimeoutMs: this.txConfirmTimeoutMs,
    });
    const session: Session = {
      fd,
      ring,
      worker,
      tx,
      confirming,
      read: 0,
      closing: false,
      stuck: false,
      kernelDrops: socketDrops(fd),
      dropsWarned: false,
      linkCheckedAt: performance.now(),
    };
    // Bun reports an uncaught error in the worker as "error" followed by "close".
    worker.addEventListener("error", (event) => this.workerGone(session, `receive worker failed: ${event.message}`));
    worker.addEventListener("close", () => this.workerGone(session, "receive worker exited unexpectedly"));
    const startMessage: RxWorkerStart = { ring: ring.buffer, fd: sock.fd, batch: RX_BATCH };
    worker.postMessage(startMessage);
    this.session = session;
    // The backoff is not reset here but when the link goes down after a stable-up window
    // (LinkState.wentDown): a link that fails right after every open is retried at the grown delay.
    this.log.debug("socketcan_open", { fd: sock.fd, ifindex: sock.ifindex });
    this.wentUp(sock.rcvBufBytes);
    this.pump(session);
    this.link.txReady(this.session === session);
  }

  /**
   * One turn of the receive pump: delivers at most DRAIN_PER_TURN frames, checks the worker and
   * the link, then either yields (setImmediate, when frames are waiting: a saturated bus must
   * not starve timers, /metrics or SIGTERM) or sleeps until the worker publishes.
   */
  private pump(session: Session): void {
    if (session.closing) return;
    const h = session.ring.header;
    const write = Atomics.load(h, H_WRITE);
    if (write !== session.read) this.drain(session, write);
    if (session.closing) return;
    this.countKernelDrops(session);
    const state = Atomics.load(h, H_STATE);
    if (state !== RX_RUNNING) {
      // The worker may have published a last batch after `write` was read: deliver it too.
      while (Atomics.load(h, H_WRITE) !== session.read && !session.closing) this.drain(session, Atomics.load(h, H_WRITE));
      if (session.closing) return;
      if (state === RX_FAILED) this.receiveFailed(session, Atomics.load(h, H_ERRNO));
      return;
    }
    this.pollHealth(false);
    if (this.linkLost(session)) return;
    if (session.read !== Atomics.load(h, H_WRITE)) {
      setImmediate(() => this.pump(session));
      return;
    }
    const wait = Atomics.waitAsync(h, H_WRITE, session.read, PUMP_TIMEOUT_MS);
    if (wait.async) void wait.value.then(() => this.pump(session));
    else setImmediate(() => this.pump(session));
  }

  /**
   * Delivers frames up to `write`, at most DRAIN_PER_TURN of them. A frame marked MSG_CONFIRM is
   * this socket's own, transmitted: it settles the request it belongs to (tx-queue.ts) instead of
   * being delivered — the hub echoes a client's frame on sent(), so delivering it too would show
   * it twice. A confirmation no request matches (the frame went out after its wait had run out)
   * is not delivered either: its sender was told it was lost and would be shown its own frame as
   * new; it counts as transmitted only (tx-queue.ts). Frames from other sockets, on this host
   * (cansend, candump's sentinel) or not, are bus frames.
   */
  private drain(session: Session, write: number): void {
    const ring = session.ring;
    const bytes = ring.bytes;
    const listener = this.listener;
    let read = session.read;
    let confirmations = 0;
    if (((write - read) | 0) > DRAIN_PER_TURN) write = (read + DRAIN_PER_TURN) | 0;
    while (read !== write) {
      const at = slotOffset(ring, read);
      const size = bytes[at + SLOT_SIZE_OFFSET]! | (bytes[at + SLOT_SIZE_OFFSET + 1]! << 8);
      const own = session.confirming && (slotFlags(bytes, at) & MSG_CONFIRM) !== 0;
      const frame = decodeCanStruct(bytes, at + SLOT_FRAME_OFFSET, size);
      read = (read + 1) | 0;
      if (frame === null) {
        this.stats.error("socketcan_read");
        continue;
      }
      if (own) {
        confirmations++;
        session.tx.confirm(frame);
        continue;
      }
      // A report from the controller's driver, not a bus frame: bus-health input only.
      if (isErrorFrame(frame)) {
        this.busHealth.errorFrame(readErrorFrame(frame));
        this.healthStale = true;
        continue;
      }
      this.stats.socketcanRxFrames++;
      // go-ampio-server documents serial_rx_frames_total as mirroring SocketCAN ingress too.
      this.stats.serialRxFrames++;
      if (listener !== null) {
        try {
          listener.frame(frame);
        } catch (err) {
          this.log.error("socketcan_listener_failed", { error: errorMessage(err) });
        }
      }
    }
    session.read = read;
    Atomics.store(ring.header, H_READ, read);
    // The worker sleeps on H_READ only when the ring was full.
    Atomics.notify(ring.header, H_READ);
    // Once per batch: confirmations made room, so a "busy" hub may offer frames again.
    if (confirmations > 0 && !session.closing) session.tx.afterConfirmations();
  }

  /**
   * Closing: the confirmations the worker still put in the ring settle their requests (the frames
   * did go out); bus frames left there are dropped with the session, counted in
   * errors_total{where="socketcan_rx_discarded"} (read from the bus, never delivered).
   */
  private settleConfirmations(session: Session): void {
    const ring = session.ring;
    const bytes = ring.bytes;
    const write = Atomics.load(ring.header, H_WRITE);
    let discarded = 0;
    for (let read = session.read; read !== write; read = (read + 1) | 0) {
      const at = slotOffset(ring, read);
      if (!session.confirming || (slotFlags(bytes, at) & MSG_CONFIRM) === 0) {
        discarded++;
        continue;
      }
      const size = bytes[at + SLOT_SIZE_OFFSET]! | (bytes[at + SLOT_SIZE_OFFSET + 1]! << 8);
      const frame = decodeCanStruct(bytes, at + SLOT_FRAME_OFFSET, size);
      if (frame !== null) session.tx.confirm(frame);
    }
    session.read = write;
    if (discarded > 0) this.stats.error("socketcan_rx_discarded", discarded);
  }

  /**
   * Counts frames the kernel dropped since the last look: the socket buffer overflowed because
   * the ring was full (this thread fell behind). Logged once per session, counted always.
   */
  private countKernelDrops(session: Session): void {
    if (session.kernelDrops < 0) return;
    const total = socketDrops(session.fd);
    if (total < 0) return;
    const fresh = (total - session.kernelDrops) >>> 0;
    session.kernelDrops = total;
    if (fresh === 0) return;
    this.stats.error("socketcan_rx_overflow", fresh);
    if (!session.dropsWarned) {
      session.dropsWarned = true;
      this.log.warn("socketcan_rx_overflow", {
        frames: fresh,
        hint: "the kernel receive buffer overflowed and dropped frames: this host is not keeping up with the bus (counted in errors_total)",
      });
    } else {
      this.log.debug("socketcan_rx_overflow", { frames: fresh });
    }
  }

  /**
   * Looks at the interface flags now and then: losing the carrier (bus-off with restart-ms 0)
   * does not fail the socket's receive, it just goes quiet. True when the session was failed.
   */
  private linkLost(session: Session): boolean {
    const now = performance.now();
    if (now - session.linkCheckedAt < LINK_CHECK_MS) return false;
    session.linkCheckedAt = now;
    let problem: string | null;
    try {
      problem = linkStateProblem(this.iface, interfaceFlags(session.fd, this.iface), this.busHealth.state);
    } catch {
      return false; // the interface vanished: the worker's receive fails with ENODEV and says so
    }
    if (problem === null) return false;
    this.fail(session, problem);
    return true;
  }

  /**
   * The worker thread ended by itself (uncaught error, or exited). It no longer touches the fd,
   * so mark it failed: closeSession then closes the fd instead of leaking it after a timeout,
   * and the backend goes down and reopens instead of staying up with nothing receiving.
   */
  private workerGone(session: Session, reason: string): void {
    const h = session.ring.header;
    const wasRunning = Atomics.compareExchange(h, H_STATE, RX_RUNNING, RX_FAILED) === RX_RUNNING;
    Atomics.notify(h, H_STATE);
    Atomics.notify(h, H_WRITE);
    if (session.closing) {
      if (session.stuck && wasRunning) {
        // closeSession gave up on this worker; now that it is gone the fd is safe to close.
        session.stuck = false;
        closeSocket(session.fd);
      }
      return;
    }
    if (this.session !== session) return;
    this.stats.error("socketcan_read");
    this.fail(session, reason);
  }

  private receiveFailed(session: Session, errno: number): void {
    this.stats.error("socketcan_read");
    this.fail(session, linkProblem(this.iface, errno, "receive"));
  }

  private writeFailed(session: Session, errno: number): void {
    this.stats.error("socketcan_write");
    if (isLinkGone(errno)) {
      // The send may have consumed the socket error the receiver would have seen: act on it here.
      this.fail(session, linkProblem(this.iface, errno, "send"));
    } else {
      this.log.debug("socketcan_write_failed", { error: describeErrno(errno) });
    }
  }

  /** The open session is broken: go down, release it, try again later. */
  private fail(session: Session, reason: string): void {
    if (session.closing || this.session !== session) return;
    this.session = null;
    this.wentDown(reason);
    const done = this.closeSession(session).then(() => {
      this.closing.delete(done);
      this.scheduleReconnect();
    });
    this.closing.add(done);
  }

  private async closeSession(session: Session): Promise<void> {
    session.closing = true;
    // Accepted frames not written yet will not reach the bus: lost("backend_down") now.
    const unwritten = session.tx.halt();
    const h = session.ring.header;
    Atomics.store(h, H_STOP, 1);
    const wait = Atomics.waitAsync(h, H_STATE, RX_RUNNING, WORKER_EXIT_TIMEOUT_MS);
    // Always yield before settling: closeSession may be entered from inside drain() (a write
    // error while a sent() callback sends), whose consumed confirmations are not yet behind
    // session.read; settling them synchronously would apply them twice.
    const result = wait.async ? await wait.value : await Promise.resolve(wait.value);
    session.worker.terminate();
    const stuck = result === "timed-out" && Atomics.load(h, H_STATE) === RX_RUNNING;
    // Written frames confirmed before the worker left are sent(); the rest will never be
    // confirmed on this socket: lost("backend_down").
    if (!stuck) this.settleConfirmations(session);
    const dropped = unwritten + session.tx.close();
    if (dropped > 0) this.log.debug("socketcan_tx_discarded", { frames: dropped });
    if (stuck) {
      // Never close an fd a thread may still be blocked on (the number could be reused); it is
      // closed if the worker does exit later (workerGone).
      session.stuck = true;
      this.log.warn("socketcan_worker_stuck", { fd: session.fd });
      return;
    }
    this.countKernelDrops(session);
    closeSocket(session.fd);
  }

  /**
   * Says once (and again if it changes) how a frame counts as sent: confirmed by the kernel, or
   * only written. With a driver that does not echo on TX-done itself (no IFF_ECHO: vcan, drivers
   * that leave the loopback to the CAN core) the core confirms as soon as the frame was queued for the device (dev_queue_xmit succeeded: on
   * vcan that is the driver taking it, on a device with a qdisc only the queue).
   */
  private logTxMode(confirming: boolean, errno: number): void {
    const mode = confirming ? "confirmed" : "written";
    if (mode === this.txModeLogged) return;
    this.txModeLogged = mode;
    if (confirming) {
      const echo = driverEchoes(this.iface);
      this.log.info("socketcan_tx_mode", {
        mode,
        driver_echo: echo ?? "unknown",
        meaning:
          echo === false
            ? "a frame counts as sent when the kernel confirms it (this driver does not echo on TX-done: the kernel confirms once the frame was queued for the device)"
            : "a frame counts as sent when the kernel confirms it was transmitted (the driver echoes it after TX-done)",
      });
    } else if (!this.txConfirm) {
      this.log.info("socketcan_tx_mode", { mode, meaning: "a frame counts as sent when the kernel took it (transmit confirmation off)" });
    } else {
      this.log.warn("socketcan_tx_mode", {
        mode,
        error: describeErrno(errno),
        meaning: "this kernel cannot confirm transmissions (CAN_RAW_RECV_OWN_MSGS refused): a frame counts as sent when the kernel took it",
      });
    }
  }

  /**
   * Reads the controller's netlink state into the health state machine: every healthPollMs, soon
   * after an error frame, or now (`force`, at open). Only kind "can" interfaces have one; the kind
   * is looked at again on each open (the interface may have been recreated).
   */
  private pollHealth(force: boolean): void {
    const now = performance.now();
    const due = force || now - this.healthPolledAt >= this.healthPollMs || (this.healthStale && now - this.healthPolledAt >= HEALTH_POLL_ON_ERROR_MS);
    if (!due) return;
    this.healthPolledAt = now;
    this.healthStale = false;
    if (!force && this.linkKind !== "" && this.linkKind !== "can") return;
    try {
      const info = this.readLink();
      if (info === null) return;
      this.linkKind = info.kind;
      this.lastCan = info.can;
      this.busHealth.linkInfo(info.can);
    } catch (err) {
      this.log.debug("socketcan_netlink_failed", { error: errorMessage(err) });
    }
  }

  /** One RTM_GETLINK for the interface; null when no netlink socket can be had (logged once). */
  private readLink(): ReturnType<LinkInfoReader["read"]> | null {
    if (this.netlink === null) {
      try {
        this.netlink = new LinkInfoReader();
      } catch (err) {
        if (!this.netlinkWarned) {
          this.netlinkWarned = true;
          this.log.warn("socketcan_no_netlink", { error: errorMessage(err), meaning: "the controller state, bit rate and error counters cannot be read" });
        }
        return null;
      }
    }
    return this.netlink.read(this.iface);
  }

  private scheduleReconnect(): void {
    if (this.session !== null) return;
    this.link.scheduleRetry(() => {
      if (this.session !== null) return;
      try {
        this.open();
      } catch (err) {
        if (err instanceof SocketCanError && err.fatal) this.log.error("socketcan_fatal", { error: err.message });
        this.wentDown(errorMessage(err));
        this.scheduleReconnect();
      }
    });
  }

  private wentUp(rcvBufBytes: number): void {
    // stats.backendReconnects is counted by the gateway from state() changes.
    const fields = { fd_frames: this.fdCapable, rcvbuf: rcvBufBytes };
    const recovery = this.link.wentUp();
    if (recovery.outageReported) this.log.info("socketcan_recovered", { ...fields, last_down_reason: recovery.lastDownReason });
    else this.log.info("socketcan_up", fields);
  }

  /** Marks the backend down; the first report of an outage is logged and sent to the listener. */
  private wentDown(reason: string): void {
    const previous = this.link.downReason;
    if (this.link.wentDown(reason)) {
      this.log.error("socketcan_down", { reason, retry: "reopening until the interface is back" });
    } else if (reason !== previous) {
      this.log.debug("socketcan_still_down", { reason });
    }
  }
}

/** Why an interface with these flags cannot carry frames, or null if it can. */
function linkStateProblem(iface: string, flags: number, state: string): string | null {
  if ((flags & IFF_UP) === 0) return `CAN interface ${iface} is down (ip link set ${iface} up)`;
  if ((flags & IFF_RUNNING) === 0 && state === "bus-off") {
    return `CAN interface ${iface} is bus-off: the controller left the bus after too many transmit errors (check wiring, termination, bit rate; ip link set ${iface} type can restart-ms 100 restarts it automatically)`;
  }
  if ((flags & IFF_RUNNING) === 0) {
    return `CAN interface ${iface} is up but not running: bus-off or no carrier (check the bus; ip link set ${iface} type can restart-ms 100 restarts after bus-off)`;
  }
  return null;
}

/** The msg_flags the worker stored with the message in the slot at `at` (rx-ring.ts). */
function slotFlags(bytes: Uint8Array, at: number): number {
  const f = at + SLOT_FLAGS_OFFSET;
  return (bytes[f]! | (bytes[f + 1]! << 8) | (bytes[f + 2]! << 16) | (bytes[f + 3]! << 24)) >>> 0;
}

/** Whether the interface's driver echoes sent frames itself (IFF_ECHO in sysfs); null if unknown. */
function driverEchoes(iface: string): boolean | null {
  try {
    const flags = Number.parseInt(readFileSync(`/sys/class/net/${iface}/flags`, "utf8").trim(), 16);
    return Number.isNaN(flags) ? null : (flags & IFF_ECHO) !== 0;
  } catch {
    return null;
  }
}

/** Errors that mean the interface is down or gone (as opposed to one bad frame). */
function isLinkGone(errno: number): boolean {
  return errno === ERRNO.ENETDOWN || errno === ERRNO.ENODEV || errno === ERRNO.ENXIO || errno === ERRNO.EBADF;
}

function linkProblem(iface: string, errno: number, op: string): string {
  if (errno === ERRNO.ENETDOWN) return `CAN interface ${iface} went down (${op}: ${describeErrno(errno)})`;
  if (errno === ERRNO.ENODEV) return `CAN interface ${iface} disappeared (${op}: ${describeErrno(errno)})`;
  return `CAN interface ${iface}: ${op} failed: ${describeErrno(errno)}`;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
