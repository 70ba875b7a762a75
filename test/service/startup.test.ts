import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { newToken, tokenEntry } from "../../automation/service/auth.ts";
import { poll } from "../support/poll.ts";
import { isRunning, startServiceProcess } from "../support/service-process.ts";
import { type TestService, clustersFile, startTestService } from "../support/service.ts";

/**
 * What the service refuses or repairs as it starts: one service per data directory (a lock the
 * kernel releases when its holder dies, however it dies), a data directory and store nobody else may
 * read, and configuration that contradicts itself (a token listed twice, a clusters file naming
 * clusters the testbed lacks) refused with the reason rather than served.
 */

const root = join(import.meta.dirname, "..", "..");
const running: TestService[] = [];
const processes: ChildProcess[] = [];

afterEach(async () => {
  for (const service of running.splice(0)) {
    await service.close();
  }
  for (const child of processes.splice(0)) {
    child.kill("SIGKILL");
  }
});

function mode(path: string): string {
  return (statSync(path).mode & 0o777).toString(8);
}

describe("the data directory's lock", () => {
  it("refuses a second live service on the same data directory, and takes it once the first stopped", async () => {
    const first = await startTestService();
    running.push(first);
    await expect(startTestService({ dataDir: first.dataDir })).rejects.toThrow(
      `another switch-vaas service is using ${first.dataDir}; stop it or give another SWITCH_DATA_DIR`,
    );
    await first.close();
    running.pop();
    running.push(await startTestService({ dataDir: first.dataDir }));
  });

  it("starts right after kill -9, while the dead service is a zombie nobody has reaped", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switch-zombie-"));
    const stderr = join(dataDir, "..", `${dataDir.split("/").at(-1)}.stderr`);
    const env = { PATH: process.env.PATH ?? "", SWITCH_ENGINE: "offline", SWITCH_DATA_DIR: dataDir, SWITCH_API_TOKENS: tokenEntry("root", "admin", newToken()), HOST: "127.0.0.1", PORT: "0" };
    // The service's parent becomes `sleep`, which never waits for children: killed, the service
    // stays a zombie, its pid taken, for as long as this test runs.
    const parent = spawn("bash", ["-c", `"${process.execPath}" --import tsx automation/service/server.ts 2>"${stderr}" & echo $!; exec sleep 120`], { cwd: root, env, stdio: ["ignore", "pipe", "ignore"] });
    processes.push(parent);
    const pid = Number(await new Promise<string>((resolve) => parent.stdout.setEncoding("utf8").once("data", resolve)));
    // bash makes the file when it starts the service, which may be after this poll's first look.
    await poll("the first service did not serve", () => Promise.resolve(existsSync(stderr) ? readFileSync(stderr, "utf8") : ""), (text) => text.includes("serving on"), 60_000);
    process.kill(pid, "SIGKILL");
    await poll("the killed service did not become a zombie", () => Promise.resolve(readFileSync(`/proc/${pid}/stat`, "utf8")), () => !isRunning(pid), 10_000);
    expect(readFileSync(`/proc/${pid}/stat`, "utf8")).toMatch(/\) Z /);

    const second = await startServiceProcess({ env: { ...env, PATH: process.env.PATH ?? "" } });
    // It took the data directory and serves; its clean stop is the crash test's to check.
    expect((await fetch(`${second.url}/healthz`)).status).toBe(200);
    await second.stop();
  }, 120_000);

  it("ignores a pid file an older service left, whichever process has that pid now", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switch-pid-"));
    // A live process that is no service: what a reused pid looks like.
    const other = spawn("sleep", ["60"], { stdio: "ignore" });
    processes.push(other);
    writeFileSync(join(dataDir, "service.pid"), String(other.pid));
    running.push(await startTestService({ dataDir }));
  });
});

describe("what only the service may read", () => {
  it("makes the data directory 0700 and its database files 0600, whatever modes they had", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switch-modes-"));
    chmodSync(dataDir, 0o755);
    const first = await startTestService({ dataDir });
    await first.close();
    chmodSync(dataDir, 0o755);
    for (const file of ["switch.db", "switch.db-wal", "switch.db-shm"]) {
      writeFileSync(join(dataDir, file), "", { flag: "a" });
      chmodSync(join(dataDir, file), 0o644);
    }
    const service = await startTestService({ dataDir });
    running.push(service);
    await service.create({ participants: [{ lat: 46.05, lon: 14.51 }] });
    expect(mode(dataDir)).toBe("700");
    for (const file of ["switch.db", "switch.db-wal", "switch.db-shm"]) {
      expect(mode(join(dataDir, file)), file).toBe("600");
    }
  });
});

describe("configuration that contradicts itself", () => {
  it("refuses a token listed twice, naming the entries and never the digest", async () => {
    const token = newToken();
    const entries = [tokenEntry("alice", "organizer", token), tokenEntry("carol", "organizer", newToken()), tokenEntry("mallory", "admin", token)].join(",");
    const failure = startTestService({ env: { SWITCH_API_TOKENS: entries } });
    await expect(failure).rejects.toThrow(
      "SWITCH_API_TOKENS entries 1 and 3 have the same token; a token has one subject and one role — keep one entry, or make another token with switchctl token create",
    );
    const message = await failure.catch((error: unknown) => (error as Error).message);
    expect(message).not.toContain(entries.split(",")[0]!.split(":")[2]);
  });

  it("refuses a clusters file naming clusters the testbed stack does not have", async () => {
    const clusters = {
      "arnes-ljubljana": { provider: "kubeconfig", location: { city: "Ljubljana", country: "SI", lat: 46.0569, lon: 14.5058 }, exposure: "nodePort", capacity: { nodes: 1, vcpuPerNode: 2, memoryGiBPerNode: 4 } },
      "nowhere-1": { provider: "kubeconfig", location: { city: "Nowhere", country: "SI", lat: 46, lon: 14 }, exposure: "nodePort", capacity: { nodes: 1, vcpuPerNode: 2, memoryGiBPerNode: 4 } },
    };
    const file = clustersFile(clusters);
    await expect(startTestService({ env: { SWITCH_TESTBED: file } })).rejects.toThrow(
      `SWITCH_TESTBED: ${file} names clusters the testbed stack "testbed" does not have (nowhere-1); every conference on them would fail`,
    );
  });
});

describe("a start it refuses", () => {
  /** The service's process as `npm start` runs it, given at most `boundMs` to end by itself. */
  function startBounded(env: Record<string, string>, boundMs = 90_000) {
    const result = spawnSync(process.execPath, ["--import", "tsx", "automation/service/server.ts"], {
      cwd: root,
      env: { PATH: process.env.PATH ?? "", HOST: "127.0.0.1", SWITCH_ENGINE: "offline", ...env },
      encoding: "utf8",
      timeout: boundMs,
      killSignal: "SIGKILL",
    });
    return { status: result.status, signal: result.signal, stderr: result.stderr };
  }

  it("ends with exit 1 and its one line when the port is taken, and stores no token nobody was shown", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switch-busy-port-"));
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    try {
      const port = (holder.address() as AddressInfo).port;
      const refused = startBounded({ SWITCH_DATA_DIR: dataDir, PORT: String(port) });
      // A process that hung would be killed by the bound: its signal would be SIGKILL.
      expect({ status: refused.status, signal: refused.signal }).toEqual({ status: 1, signal: null });
      expect(refused.stderr.trim().split("\n").at(-1)).toBe(`switch-vaas: listen EADDRINUSE: address already in use 127.0.0.1:${port}`);
      expect(refused.stderr).not.toContain("Created an admin token");
      expect(existsSync(join(dataDir, "tokens"))).toBe(false);
    } finally {
      holder.close();
    }
    // The next start, on a free port, makes the token and shows it.
    const next = await startServiceProcess({ env: { SWITCH_ENGINE: "offline", SWITCH_DATA_DIR: dataDir, HOST: "127.0.0.1", PORT: "0" } });
    try {
      const token = /Created an admin token[^\n]*\n\n {2}(svt_\S+)/.exec(next.stderr)?.[1];
      expect(token).toBeDefined();
      expect((await fetch(`${next.url}/v1/clusters`, { headers: { authorization: `Bearer ${token!}` } })).status).toBe(200);
    } finally {
      await next.stop();
    }
  });

  it("ends with exit 1 and its one line on malformed SWITCH_API_TOKENS, having opened nothing", () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), "switch-bad-tokens-")), "data");
    const refused = startBounded({ SWITCH_DATA_DIR: dataDir, PORT: "0", SWITCH_API_TOKENS: "alice:organizer" });
    expect({ status: refused.status, signal: refused.signal }).toEqual({ status: 1, signal: null });
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toMatch(/^switch-vaas: SWITCH_API_TOKENS/);
    expect(existsSync(dataDir)).toBe(false);
  });

  it("takes a data directory from before it kept its engine for the offline engine's, by the directory that engine left", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switch-engine-before-"));
    const first = await startTestService({ dataDir });
    await first.close();
    rmSync(join(dataDir, "engine"));
    const refused = startBounded({ SWITCH_DATA_DIR: dataDir, PORT: "0", SWITCH_ENGINE: "local" });
    expect({ status: refused.status, signal: refused.signal }).toEqual({ status: 1, signal: null });
    expect(refused.stderr.trim()).toContain(`the records in ${dataDir} were made with the offline engine`);
  });

  it("refuses an engine other than the one the data directory's records were made with", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switch-engine-"));
    const first = await startTestService({ dataDir });
    await first.close();
    expect(readFileSync(join(dataDir, "engine"), "utf8")).toBe("offline\n");
    const refused = startBounded({ SWITCH_DATA_DIR: dataDir, PORT: "0", SWITCH_ENGINE: "local" });
    expect({ status: refused.status, signal: refused.signal }).toEqual({ status: 1, signal: null });
    expect(refused.stderr.trim()).toBe(
      `switch-vaas: SWITCH_ENGINE: the records in ${dataDir} were made with the offline engine, and the local engine would not find their stacks; start with SWITCH_ENGINE=offline, or give another SWITCH_DATA_DIR`,
    );
  });
});
