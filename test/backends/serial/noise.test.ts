/**
 * Bytes arriving on the serial line that never form a frame (the classic wrong -baud symptom:
 * the adapter at 115200 read at 9600 is pure noise) are counted in serial_rx_noise_bytes_total
 * and said once in the log (serial_no_valid_frames, naming -baud), for the Ampio adapter and for
 * an slcan adapter; a valid frame re-arms the warning. Real ptys (socat), as the other serial tests.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { SerialBackend } from "../../../src/backends/serial/serial-backend.ts";
import { createSlcanBackend } from "../../../src/backends/slcan/slcan-backend.ts";
import { memoryLogger } from "../../../src/ops/log.ts";
import { Stats } from "../../../src/ops/stats.ts";
import { encodeAmpioRx } from "../../../src/protocols/ampio-serial/codec.ts";
import { prng } from "../../fixtures/ampio-stream.ts";
import { LawicelDevice } from "../../helpers/lawicel-device.ts";
import { waitFor, writeAll } from "../../helpers/pty.ts";
import { recordingListener } from "../../helpers/tx-request.ts";
import { PtyScope } from "./harness.ts";

const scope = new PtyScope();
afterEach(() => scope.release());

/** `n` bytes of noise from a fixed seed (what a UART at the wrong rate delivers). */
function noise(n: number, seed: number): Uint8Array {
  const rnd = prng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
}

const warnings = (lines: string[]) => lines.filter((l) => l.includes('"serial_no_valid_frames"'));

describe("serial noise: counted, and a wrong -baud is named", () => {
  test("Ampio adapter: 2,000 bytes of noise are counted and warned about once; a frame re-arms the warning", async () => {
    const pair = await scope.pty("noise");
    const stats = new Stats();
    const { log, lines } = memoryLogger("debug");
    const backend = new SerialBackend({ path: pair.deviceA, baud: 115200, stats, log });
    const listener = recordingListener();
    await backend.start(listener);
    scope.defer(() => backend.stop());
    const peer = scope.peer(pair.deviceB);
    await waitFor(() => backend.up, 5000, "up");

    await writeAll(peer, noise(2000, 7));
    await waitFor(() => stats.serialRxNoiseBytes + stats.malformedFrames * 3 >= 1900, 5000, "the noise counted");
    await waitFor(() => warnings(lines).length === 1, 5000, "the warning");
    const w = JSON.parse(warnings(lines)[0]!) as Record<string, unknown>;
    expect(w.level).toBe("warn");
    expect(String(w.hint)).toContain("-baud");
    expect(w.baud).toBe(115200);
    expect(listener.frames.length).toBe(0);

    // More noise: no second line while no frame came in between.
    await writeAll(peer, noise(2000, 8));
    await waitFor(() => stats.serialRxNoiseBytes >= 3000, 5000, "more noise counted");
    expect(warnings(lines).length).toBe(1);

    // A valid frame, then noise again: warned again.
    await writeAll(peer, encodeAmpioRx(0x1234, [1, 2]));
    await waitFor(() => listener.frames.length >= 1, 5000, "the frame");
    await writeAll(peer, noise(2000, 9));
    await waitFor(() => warnings(lines).length === 2, 5000, "the second warning");
  });

  test("a little noise (a hot-plug glitch) is counted but not warned about", async () => {
    const pair = await scope.pty("noise-small");
    const stats = new Stats();
    const { log, lines } = memoryLogger("debug");
    const backend = new SerialBackend({ path: pair.deviceA, baud: 115200, stats, log });
    await backend.start(recordingListener());
    scope.defer(() => backend.stop());
    const peer = scope.peer(pair.deviceB);
    await waitFor(() => backend.up, 5000, "up");
    await writeAll(peer, Uint8Array.from({ length: 100 }, (_, i) => (i * 7 + 1) & 0x7f));
    await waitFor(() => stats.serialRxNoiseBytes > 0, 5000, "noise counted");
    await Bun.sleep(50);
    expect(warnings(lines)).toEqual([]);
  });

  test("slcan adapter: noise without line ends is counted and warned about, frames still parse after it", async () => {
    const pair = await scope.pty("noise-slcan");
    const stats = new Stats();
    const { log, lines } = memoryLogger("debug");
    const backend = createSlcanBackend({ path: pair.deviceA, baud: 115200, bitrate: 500_000, stats, log });
    const listener = recordingListener();
    await backend.start(listener);
    scope.defer(() => backend.stop());
    const device = new LawicelDevice(scope.peer(pair.deviceB));
    scope.defer(() => device.close());
    await waitFor(() => device.open, 5000, "adapter open");
    device.write(noise(2000, 11));
    await waitFor(() => warnings(lines).length === 1, 5000, "the warning");
    expect(stats.serialRxNoiseBytes).toBeGreaterThan(1000);
    expect(String(JSON.parse(warnings(lines)[0]!).hint)).toContain("slcan line");
    device.send("", "t1232ABCD");
    await waitFor(() => listener.frames.length === 1, 5000, "a frame after the noise");
  });
});
