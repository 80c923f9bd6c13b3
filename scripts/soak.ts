/**
 * `npm run soak -- short|long [--duration 30m] [--write] [--binary PATH]`: runs the compiled
 * binary (built first if missing) for a while under churn, hostile clients and device faults, on
 * the virtual bus and on the serial backend over a socat pty, and asserts that it stayed up,
 * leaked nothing and accounted for every frame:
 *   - the process never exits; /healthz answers within HEALTHZ_BOUND_MS throughout;
 *   - reference clients (cannelloni and Waveshare) connected for the whole run receive every
 *     sequenced bus frame exactly, in order, and the gateway's own per-client count agrees;
 *   - after the churn stops, open fds return to the baseline (± FD_SLACK) and RssAnon stays under
 *     RSS_ANON_BOUND_KIB, with no upward trend over the second half in runs of TREND_MIN_SECONDS or more;
 *   - every frame a client did not get is in a drop counter with a reason, and the per-client
 *     log lines add up to the process-wide counters;
 *   - after each pty vanish/return the backend is up again within the backoff cap (plus slack).
 * Exit status 0 only if every criterion held; the last line is "soak: N passed, N failed".
 * --write records the figures in RELIABILITY.md. Traffic goes to 127.0.0.1 only; every loop is
 * bounded by the profile's duration.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { encodeAmpioRx } from "../src/protocols/ampio-serial/codec.ts";
import { CannelloniTestClient } from "../test/helpers/cannelloni-client.ts";
import { startGatewayProcess, type GatewayProcess, type LogLine } from "../test/helpers/gateway-process.ts";
import { createPtyPair, openPeer, type PtyPair } from "../test/helpers/pty.ts";
import { WaveshareTestClient } from "../test/helpers/waveshare-client.ts";
import { churnOnce, count, HOSTILE, offerUdpPeerPorts, type Ports, type Tally } from "./soak/clients.ts";
import { SequenceChecker, sequencedFrame } from "../test/helpers/sequence.ts";

const ROOT = path.resolve(import.meta.dir, "..");
const HEALTHZ_BOUND_MS = 1000;
const RSS_ANON_BOUND_KIB = 96 * 1024;
const FD_SLACK = 8;
/** Serial reopen backoff cap (1 s) plus time to notice and log. */
const RECOVERY_BOUND_MS = 2500;
const STEADY_RATE = 382; // the Ampio bus maximum, frames/s
const BURST_RATE = 720; // a 115200-baud UART saturated with 8-byte frames
const FD_LIMIT = 512;
/** Runs at least this long judge the RssAnon trend (see Profile.slopeBoundKiBs). */
const TREND_MIN_SECONDS = 300;

interface Profile {
  readonly name: "short" | "long";
  readonly seconds: number;
  /**
   * Bound on the RssAnon slope over the second half, KiB/s; null: reported, not judged. A run
   * shorter than TREND_MIN_SECONDS has a handful of samples inside one or two GC cycles of the
   * gateway's heap, so its slope is the sawtooth's, not a trend: 30 s runs of the same code gave
   * −876 to +340 KiB/s. The long profile (120+ samples over minutes) judges it.
   */
  readonly slopeBoundKiBs: number | null;
}

function parseArgs(argv: string[]): { profile: Profile; write: boolean; binary: string | null } {
  const name = argv.find((a) => a === "short" || a === "long") ?? "short";
  const di = argv.indexOf("--duration");
  const durText = di >= 0 ? argv[di + 1] ?? "" : name === "short" ? "30s" : "30m";
  const m = /^(\d+)(s|m|h)$/.exec(durText);
  if (!m) throw new Error(`--duration ${durText}: expected e.g. 30s, 30m, 2h`);
  const seconds = Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as "s" | "m" | "h"];
  const bi = argv.indexOf("--binary");
  return {
    profile: { name: name as Profile["name"], seconds, slopeBoundKiBs: seconds < TREND_MIN_SECONDS ? null : 4 },
    write: argv.includes("--write"),
    binary: bi >= 0 ? argv[bi + 1]! : null,
  };
}

/** Newest modification time of any file under dir (ms). */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) newest = Math.max(newest, fs.statSync(path.join(e.parentPath, e.name)).mtimeMs);
  }
  return newest;
}

async function ensureBinary(explicit: string | null): Promise<string> {
  const bin = explicit ?? path.join(ROOT, "dist/can-server-linux-x64/can-server");
  if (explicit) {
    if (!fs.existsSync(bin)) throw new Error(`no binary at ${bin}`);
    return bin;
  }
  // A binary older than the sources would soak yesterday's code: rebuild it.
  if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= newestMtime(path.join(ROOT, "src"))) return bin;
  console.log("soak: building the x64 binary (ARCHES=x64 scripts/build.sh)");
  const p = Bun.spawn(["bash", "scripts/build.sh"], { cwd: ROOT, env: { ...process.env, ARCHES: "x64" }, stdout: "inherit", stderr: "inherit" });
  if ((await p.exited) !== 0 || !fs.existsSync(bin)) throw new Error("build failed");
  return bin;
}

/** n distinct UDP ports free on 127.0.0.1 right now (bound and released). */
async function freeUdpPorts(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    out.push(s.port);
    s.close();
  }
  return out;
}

interface Sample {
  t: number;
  rssAnonKiB: number;
  rssFileKiB: number;
  fds: number;
  cpuPercent: number;
  healthzMs: number;
  loopLagMs: number;
}

/** Least-squares slope of y over t (units of y per second). */
function slope(points: { t: number; y: number }[]): number {
  const n = points.length;
  if (n < 3) return 0;
  const mt = points.reduce((a, p) => a + p.t, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.y - my);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

interface RunResult {
  readonly backend: "virtual" | "serial";
  readonly seconds: number;
  readonly checks: Check[];
  readonly figures: Record<string, string | number>;
  readonly tally: Tally;
  readonly drops: Record<string, number>;
}

/** Log lines the soak reads later (everything else is only counted). */
// startGatewayProcess waits for `listening` (the ports), so it must be kept too.
const KEEP = new Set(["listening", "ready", "metrics_listen", "tcp_listen", "shutdown_summary", "serial_up", "serial_down"]);

async function runOne(backend: "virtual" | "serial", binary: string, profile: Profile): Promise<RunResult> {
  const t0 = performance.now();
  const elapsed = (): number => (performance.now() - t0) / 1000;
  const churnUntil = profile.seconds * 0.75;
  const tally: Tally = new Map();
  let pty: PtyPair | null = null;
  let adapter = -1;
  if (backend === "serial") {
    pty = await createPtyPair("soak");
    adapter = openPeer(pty.deviceB);
  }
  // Per-client accounting from the gateway's own log lines.
  const perClient = new Map<string, LogLine>();
  let sumHubDropped = 0;
  const sumTxDropped = new Map<string, number>();
  const events = new Map<string, number>();
  // Every client protocol on, on ephemeral ports; UDP peers on fixed free ports the churn borrows.
  const udpPeerPorts = await freeUdpPorts(4);
  const args = [
    "-waveshare-listen", "127.0.0.1:0",
    "-socketcand-listen", "127.0.0.1:0",
    "-slcan-listen", "127.0.0.1:0",
    "-gvret-listen", "127.0.0.1:0",
    "-canlogserver-listen", "127.0.0.1:0",
    "-cannelloni-udp-listen", "127.0.0.1:0",
    "-cannelloni-udp-peer", udpPeerPorts.map((p) => `127.0.0.1:${p}`).join(","),
    "-handshake-timeout", "2s",
    "-client-read-timeout", "5s",
    ...(backend === "serial" ? ["-backend", "serial", "-serial", pty!.deviceA] : ["-backend", "virtual"]),
  ];
  const gw: GatewayProcess = await startGatewayProcess(args, {
    binary,
    shellPrefix: `ulimit -n ${FD_LIMIT};`,
    keep: (l) => KEEP.has(l.msg),
    onLine: (l) => {
      events.set(l.msg, (events.get(l.msg) ?? 0) + 1);
      // A client's final line, a UDP peer's, and the settlement of frames it left queued.
      if (l.msg !== "client_disconnected" && l.msg !== "udp_peer_removed" && l.msg !== "client_tx_settled") return;
      sumHubDropped += Number(l.dropped ?? 0);
      for (const [k, v] of Object.entries(l)) {
        if (k.startsWith("bus_tx_dropped_")) sumTxDropped.set(k.slice("bus_tx_dropped_".length), (sumTxDropped.get(k.slice("bus_tx_dropped_".length)) ?? 0) + Number(v));
      }
      if (l.msg === "client_disconnected") perClient.set(String(l.remote), l);
    },
  });
  const port = (name: string): number => {
    const p = gw.ports[name];
    if (p === undefined) throw new Error(`soak: the gateway reported no ${name} listener (have ${Object.keys(gw.ports).join(", ")})`);
    return p;
  };
  const ports: Ports = {
    cannelloni: port("cannelloni"),
    waveshare: port("waveshare"),
    socketcand: port("socketcand"),
    slcan: port("slcan"),
    gvret: port("gvret"),
    canlogserver: port("canlogserver"),
    cannelloniUdp: port("cannelloni-udp"),
    udpPeerPorts,
    http: port("http"),
  };
  offerUdpPeerPorts(udpPeerPorts);

  // Reference clients, for the whole run.
  const refCnl = await CannelloniTestClient.connect(ports.cannelloni);
  await refCnl.handshake();
  const refWs = await WaveshareTestClient.connect(ports.waveshare);
  const refs = [
    { name: "cannelloni", client: refCnl, checker: new SequenceChecker(), received: 0 },
    { name: "waveshare", client: refWs, checker: new SequenceChecker(), received: 0 },
  ];
  const consume = (): void => {
    for (const r of refs) {
      r.received += r.client.frames.length;
      r.checker.feed(r.client.frames);
      r.client.frames.length = 0;
      if (r.client instanceof WaveshareTestClient) r.client.raw.length = 0;
    }
  };

  // The bus: sequenced frames at the Ampio rate, bursts at UART saturation (virtual: a producer client).
  let produced = 0;
  let producing = true;
  const producer = backend === "virtual" ? await CannelloniTestClient.connect(ports.cannelloni) : null;
  if (producer) await producer.handshake();
  const emit = (n: number): void => {
    if (producer) {
      const frames = Array.from({ length: n }, () => sequencedFrame(produced++));
      producer.send(...frames);
    } else {
      const parts: Uint8Array[] = [];
      for (let i = 0; i < n; i++) {
        const f = sequencedFrame(produced++);
        parts.push(encodeAmpioRx(f.canId & 0x1fffffff, f.data));
      }
      const bytes = Buffer.concat(parts);
      let off = 0;
      for (let tries = 0; off < bytes.length && tries < 1000; tries++) {
        try {
          off += fs.writeSync(adapter, bytes, off, bytes.length - off);
        } catch {
          Bun.sleepSync(1);
        }
      }
      if (off < bytes.length) throw new Error("soak: the adapter end would not take the bus traffic");
    }
  };
  let garbageBytes = 0;
  const bus = (async () => {
    let last = performance.now();
    let owed = 0;
    while (elapsed() < profile.seconds) {
      await Bun.sleep(5);
      const now = performance.now();
      const inBurst = elapsed() % 10 < 1; // 1 s of saturation every 10 s
      owed += ((now - last) / 1000) * (inBurst ? BURST_RATE : STEADY_RATE);
      last = now;
      if (!producing) {
        owed = 0;
        continue;
      }
      const n = Math.floor(owed);
      owed -= n;
      if (n > 0) emit(n);
      if (backend === "serial" && Math.random() < 0.01) {
        // Line noise between frames: bytes without the preamble's first byte, so no frame is eaten.
        const noise = Uint8Array.from({ length: 32 }, () => {
          const b = Math.floor(Math.random() * 256);
          return b === 0x2d ? 0x00 : b;
        });
        try {
          garbageBytes += fs.writeSync(adapter, noise);
        } catch {
          // tty full: skip this burst
        }
      }
    }
  })();

  // Device faults (serial): the pty vanishes and returns, about a dozen times per run.
  const recoveries: number[] = [];
  /** Each pty vanish: the sequence number produced last before it, and whether the clients had it all. */
  const faultLog: { seq: number; drained: boolean }[] = [];
  const faults = (async () => {
    if (!pty) return;
    const cycles = Math.max(6, Math.min(60, Math.floor(profile.seconds / 4)));
    const every = (churnUntil * 1000) / cycles;
    for (let i = 0; i < cycles && elapsed() < churnUntil; i++) {
      await Bun.sleep(every * 0.7);
      producing = false;
      // Let the reference clients drain, so no frame is lost inside the dying pty.
      const drainDeadline = performance.now() + 10_000;
      // (Counted after consume(): the clients' buffers also hold churn frames, so their length
      // says nothing about how many sequenced frames have arrived.)
      const behind = (): boolean => {
        consume();
        return refs.some((r) => r.checker.next < produced);
      };
      while (performance.now() < drainDeadline && behind()) await Bun.sleep(10);
      const drained = !behind();
      faultLog.push({ seq: produced, drained });
      if (!drained) count(tally, "pty_drain_timeouts");
      const ups = events.get("serial_up") ?? 0;
      await pty.kill();
      try {
        fs.closeSync(adapter);
      } catch {
        // already hung up
      }
      await Bun.sleep(100 + Math.random() * 400);
      await pty.recreate();
      const back = performance.now();
      adapter = openPeer(pty.deviceB);
      while ((events.get("serial_up") ?? 0) === ups && performance.now() - back < 10_000) await Bun.sleep(5);
      recoveries.push(performance.now() - back);
      count(tally, "pty_vanish_return");
      producing = true;
    }
  })();

  // Churn (about 20 client lives per second) and hostile clients (about 3 attacks per second)
  // for the first 75 % of the run, each with bounded concurrency.
  const actions = new Set<Promise<void>>();
  const launch = async (everyMs: number, maxInflight: number, job: () => Promise<void>): Promise<void> => {
    let inflight = 0;
    while (elapsed() < churnUntil) {
      await Bun.sleep(everyMs);
      if (inflight >= maxInflight) continue;
      inflight++;
      const p: Promise<void> = job().finally(() => {
        inflight--;
        actions.delete(p);
      });
      actions.add(p);
    }
  };
  const hostileKinds = Object.keys(HOSTILE);
  const launcher = Promise.all([
    launch(50, 24, () => churnOnce(ports, tally)),
    launch(300, 4, () => HOSTILE[hostileKinds[Math.floor(Math.random() * hostileKinds.length)]!]!(ports, tally)),
  ]);

  // Sampling.
  const samples: Sample[] = [];
  let cpuPrev = gw.cpuSeconds();
  let tPrev = performance.now();
  let healthzFailures = 0;
  let exitedEarly = false;
  const baselineFds = gw.openFds();
  while (elapsed() < profile.seconds) {
    await Bun.sleep(2000);
    consume();
    if (gw.proc.exitCode !== null) {
      exitedEarly = true;
      break;
    }
    let healthzMs = HEALTHZ_BOUND_MS * 10;
    try {
      const h = await gw.http("/healthz", HEALTHZ_BOUND_MS * 5);
      healthzMs = h.status === 200 ? h.ms : healthzMs;
      if (h.status !== 200) healthzFailures++;
    } catch {
      healthzFailures++;
    }
    let loopLagMs = -1;
    try {
      loopLagMs = (await gw.metric("nodejs_eventloop_lag_max_seconds")) * 1000;
    } catch {
      // counted as healthz failure above if the endpoint is gone
    }
    const cpu = gw.cpuSeconds();
    const now = performance.now();
    const mem = gw.memory();
    samples.push({ t: elapsed(), ...mem, fds: gw.openFds(), cpuPercent: ((cpu - cpuPrev) / ((now - tPrev) / 1000)) * 100, healthzMs, loopLagMs });
    cpuPrev = cpu;
    tPrev = now;
  }
  await Promise.all([bus, faults, launcher]);
  await Promise.race([Promise.all([...actions]), Bun.sleep(8000)]);
  producing = false;
  // Quiet: let every reference client catch up.
  const catchUp = performance.now() + 5000;
  while (performance.now() < catchUp) {
    consume();
    if (!refs.some((r) => r.checker.next < produced)) break;
    await Bun.sleep(20);
  }
  consume();
  await Bun.sleep(1500); // churned sockets finish closing
  const finalFds = gw.openFds();
  const finalMem = gw.memory();
  const refPorts = refs.map((r) => r.client.localPort);
  const exitCode = await gw.stop();
  if (producer) producer.close();
  for (const r of refs) r.client.close();
  if (pty) {
    try {
      fs.closeSync(adapter);
    } catch {
      // closed with the pty
    }
    await pty.close();
  }
  const summary = gw.lines.find((l) => l.msg === "shutdown_summary") ?? { msg: "missing" };

  const second = samples.filter((s) => s.t >= profile.seconds / 2);
  const rssSlope = slope(second.map((s) => ({ t: s.t, y: s.rssAnonKiB })));
  const peakAnon = Math.max(finalMem.rssAnonKiB, ...samples.map((s) => s.rssAnonKiB));
  const maxHealthz = Math.max(0, ...samples.map((s) => s.healthzMs));
  const checks: Check[] = [];
  const check = (name: string, ok: boolean, detail: string): void => void checks.push({ name: `${backend}: ${name}`, ok, detail });
  check("process stayed up, clean exit on SIGTERM", !exitedEarly && exitCode === 0, `exit code ${exitCode}`);
  check(`/healthz answered within ${HEALTHZ_BOUND_MS} ms every time`, healthzFailures === 0 && maxHealthz <= HEALTHZ_BOUND_MS, `max ${maxHealthz.toFixed(1)} ms, ${healthzFailures} failures`);
  const lockedOut = tally.get("handshake_hogs_locked_out") ?? 0;
  check("handshake hogs and idle connections from another host never kept a client out", lockedOut === 0, `${tally.get("handshake_hogs") ?? 0} hog rounds served, ${lockedOut} locked out`);
  for (const [i, r] of refs.entries()) {
    const nearFaults = r.checker.gaps.map((g) => {
      const f = faultLog.reduce<{ seq: number; drained: boolean } | null>((best, x) => (best === null || Math.abs(x.seq - g) < Math.abs(best.seq - g) ? x : best), null);
      return f ? `gap at ${g}: nearest pty fault at seq ${f.seq}${f.drained ? "" : " (not drained)"}` : `gap at ${g}`;
    });
    check(
      `reference ${r.name} client got every bus frame exactly, in order`,
      r.checker.errors === 0 && r.checker.next === produced,
      `${r.checker.next}/${produced} in order, ${r.checker.errors} errors ${r.checker.problems.join("; ")}${nearFaults.length ? ` [${nearFaults.join("; ")}]` : ""}`,
    );
    const line = perClient.get(`127.0.0.1:${refPorts[i]}`);
    const gwTx = Number(line?.tx_frames ?? -1);
    check(`reference ${r.name}: the gateway's count agrees with the client`, gwTx === r.received && Number(line?.dropped ?? -1) === 0, `gateway tx_frames ${gwTx}, dropped ${line?.dropped}; client received ${r.received}`);
  }
  check(`open fds back to baseline (± ${FD_SLACK})`, finalFds <= baselineFds + FD_SLACK, `baseline ${baselineFds}, peak ${Math.max(...samples.map((s) => s.fds))}, final ${finalFds}`);
  check(`RssAnon under ${RSS_ANON_BOUND_KIB / 1024} MiB`, peakAnon <= RSS_ANON_BOUND_KIB, `peak ${(peakAnon / 1024).toFixed(1)} MiB, final ${(finalMem.rssAnonKiB / 1024).toFixed(1)} MiB`);
  if (profile.slopeBoundKiBs !== null) {
    check(`RssAnon shows no upward trend in the second half (≤ ${profile.slopeBoundKiBs} KiB/s)`, rssSlope <= profile.slopeBoundKiBs, `slope ${rssSlope.toFixed(2)} KiB/s over ${second.length} samples`);
  } else {
    console.error(`soak: ${backend}: RssAnon slope over the second half ${rssSlope.toFixed(2)} KiB/s over ${second.length} samples (reported, not judged: run ${TREND_MIN_SECONDS / 60} min or more)`);
  }
  check("per-client hub drops add up to hub_dropped_frames_total", sumHubDropped === Number(summary.dropped_frames), `sum of client lines ${sumHubDropped}, summary ${summary.dropped_frames}`);
  const txReasons = new Set([...sumTxDropped.keys(), ...Object.keys(summary).filter((k) => k.startsWith("client_tx_dropped_")).map((k) => k.slice("client_tx_dropped_".length))]);
  const txMismatch = [...txReasons].filter((r) => (sumTxDropped.get(r) ?? 0) !== Number(summary[`client_tx_dropped_${r}`] ?? 0));
  check(
    "per-client TX drops add up to client_tx_dropped_total by reason",
    txMismatch.length === 0,
    txMismatch.length
      ? `mismatch: ${txMismatch.map((r) => `${r}: clients ${sumTxDropped.get(r) ?? 0} vs total ${summary[`client_tx_dropped_${r}`] ?? 0}`).join(", ")}`
      : `${[...txReasons].map((r) => `${r}=${sumTxDropped.get(r) ?? 0}`).join(" ") || "none"}`,
  );
  if (backend === "serial") {
    const worst = Math.max(0, ...recoveries);
    check(`backend recovered after every pty vanish/return within ${RECOVERY_BOUND_MS} ms`, recoveries.length > 0 && worst <= RECOVERY_BOUND_MS, `${recoveries.length} cycles, worst ${worst.toFixed(0)} ms`);
  }

  const drops: Record<string, number> = { hub_dropped: Number(summary.dropped_frames ?? 0) };
  for (const [k, v] of Object.entries(summary)) if (k.startsWith("client_tx_dropped_")) drops[k] = Number(v);
  count(tally, "garbage_line_bytes", garbageBytes);
  const figures: Record<string, string | number> = {
    duration_s: Math.round(elapsed()),
    connections_accepted: Number(summary.accepted ?? 0),
    connections_rejected: Number(summary.rejected_clients ?? 0),
    bus_frames_produced: produced,
    frames_delivered_to_references: refs.reduce((a, r) => a + r.received, 0),
    peak_rss_anon_mib: +(peakAnon / 1024).toFixed(1),
    final_rss_anon_mib: +(finalMem.rssAnonKiB / 1024).toFixed(1),
    final_rss_file_mib: +(finalMem.rssFileKiB / 1024).toFixed(1),
    rss_anon_slope_kib_s: +rssSlope.toFixed(2),
    fds_baseline_peak_final: `${baselineFds} / ${Math.max(...samples.map((s) => s.fds))} / ${finalFds}`,
    max_event_loop_lag_ms: +Math.max(0, ...samples.map((s) => s.loopLagMs)).toFixed(1),
    max_healthz_ms: +maxHealthz.toFixed(1),
    max_cpu_percent: +Math.max(0, ...samples.map((s) => s.cpuPercent)).toFixed(1),
    backend_restarts: recoveries.length,
    log_lines: [...events.values()].reduce((a, b) => a + b, 0),
  };
  return { backend, seconds: Math.round(elapsed()), checks, figures, tally, drops };
}

function report(results: RunResult[], profile: Profile, command: string): string {
  const out: string[] = [];
  out.push(`<!-- soak:${profile.name} -->`);
  out.push(`### Profile \`${profile.name}\` (${profile.seconds} s per backend)`);
  out.push("");
  out.push(`Machine: ${process.arch}, ${navigator.hardwareConcurrency} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; Bun ${Bun.version}; ${new Date().toISOString().slice(0, 10)}; \`${command}\``);
  out.push("");
  out.push(`| figure | ${results.map((r) => r.backend).join(" | ")} |`);
  out.push(`|---|${results.map(() => "---").join("|")}|`);
  for (const k of Object.keys(results[0]!.figures)) out.push(`| ${k} | ${results.map((r) => r.figures[k]).join(" | ")} |`);
  const kinds = [...new Set(results.flatMap((r) => [...r.tally.keys()]))].sort();
  for (const k of kinds) out.push(`| sent: ${k} | ${results.map((r) => r.tally.get(k) ?? 0).join(" | ")} |`);
  const dk = [...new Set(results.flatMap((r) => Object.keys(r.drops)))].sort();
  for (const k of dk) out.push(`| dropped: ${k} | ${results.map((r) => r.drops[k] ?? 0).join(" | ")} |`);
  out.push("");
  for (const r of results) for (const c of r.checks) out.push(`- ${c.ok ? "PASS" : "FAIL"} ${c.name} — ${c.detail}`);
  out.push(`<!-- /soak:${profile.name} -->`);
  return out.join("\n");
}

async function main(): Promise<number> {
  const { profile, write, binary: explicit } = parseArgs(process.argv.slice(2));
  const binary = await ensureBinary(explicit);
  const results: RunResult[] = [];
  const oi = process.argv.indexOf("--only");
  const only = oi >= 0 ? process.argv[oi + 1] : undefined;
  for (const backend of (["virtual", "serial"] as const).filter((b) => only === undefined || b === only)) {
    const t = performance.now();
    console.log(`soak: ${profile.name} on ${backend} for ${profile.seconds} s (binary ${path.relative(ROOT, binary)})`);
    results.push(await runOne(backend, binary, profile));
    console.log(`soak: ${backend} done in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  }
  const command = `npm run soak -- ${process.argv.slice(2).join(" ")}`.trim();
  let vm: Check | null = null;
  if (profile.name === "long" || process.argv.includes("--vm")) {
    // SocketCAN: vcan0 down/up cycles under traffic in the VM, one cycle per ~10 s of the profile.
    const cycles = Math.max(8, Math.min(500, Math.floor(profile.seconds / 10)));
    console.log(`soak: SocketCAN link cycles in the VM (${cycles} cycles)`);
    const p = Bun.spawn(["bash", "scripts/test-socketcan.sh"], {
      cwd: ROOT,
      env: { ...process.env, SOCKETCAN_TESTS: "test/socketcan/link-cycles.test.ts", SOAK_VM_CYCLES: String(cycles) },
      stdout: "inherit",
      stderr: "inherit",
    });
    const code = await p.exited;
    vm = { name: `socketcan (VM): ${cycles} vcan0 down/up cycles under traffic, every frame exact`, ok: code === 0, detail: `exit ${code}` };
  }
  const end = `<!-- /soak:${profile.name} -->`;
  const text = report(results, profile, command).replace(end, vm ? `- ${vm.ok ? "PASS" : "FAIL"} ${vm.name} — ${vm.detail}\n${end}` : end);
  console.log(text);
  if (write) {
    const file = path.join(ROOT, "RELIABILITY.md");
    const old = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    const re = new RegExp(`<!-- soak:${profile.name} -->[\\s\\S]*?<!-- /soak:${profile.name} -->`);
    fs.writeFileSync(file, re.test(old) ? old.replace(re, text) : `${old.trimEnd()}\n\n${text}\n`);
    console.log(`soak: wrote ${path.relative(ROOT, file)}`);
  }
  const checks = [...results.flatMap((r) => r.checks), ...(vm ? [vm] : [])];
  const failed = checks.filter((c) => !c.ok).length;
  console.log(`soak: ${checks.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

process.exit(await main());
