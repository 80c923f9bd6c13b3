/**
 * A cannelloni client that completes the handshake and then never reads: a separate python3
 * process with a tiny receive buffer, so the gateway's socket really stops draining (a client in
 * this process could not stop Bun from reading its socket).
 */
import type { Subprocess } from "bun";

const SCRIPT = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"CANNELLONIv1")
got = b""
while len(got) < 12:
    got += s.recv(12 - len(got))
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
`;

export interface SlowClient {
  proc: Subprocess<"ignore", "pipe", "inherit">;
  kill(): void;
}

export async function startSlowClient(port: number, lifetimeSeconds = 20): Promise<SlowClient> {
  const proc = Bun.spawn(["python3", "-c", SCRIPT, String(port), String(lifetimeSeconds)], { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!value || !new TextDecoder().decode(value).includes("ready")) throw new Error("slow client did not start");
  return { proc, kill: () => proc.kill() };
}
