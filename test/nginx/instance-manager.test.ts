import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { InstanceManager } from "../../automation/instance-manager/agent.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verify } from "../../domain/wae/signature.ts";
import { coresUsed, growth, interfaceNames, parseProcStat, parseStubStatus, parseTxBytes } from "../../automation/instance-manager/counters.ts";
import { type InstanceManagerReport, parseReport } from "../../domain/wae/reports.ts";
import { STATUS_PATH, edgeConfig } from "../../components/cdn-pop/nginx.ts";
import { type RunningNginx, freePort, originConfig, startNginx } from "../support/nginx.ts";
import { poll } from "../support/poll.ts";

const KEY = "host-key-of-host1";
const LOCAL = "127.0.0.1";

/** /proc/stat with the given jiffies: user, system, idle on two CPUs. */
function procStat(user: number, system: number, idle: number): string {
  return [`cpu  ${user} 0 ${system} ${idle} 0 0 0 0 0 0`, `cpu0 ${user / 2} 0 ${system / 2} ${idle / 2} 0 0 0 0 0 0`, `cpu1 ${user / 2} 0 ${system / 2} ${idle / 2} 0 0 0 0 0 0`, "intr 1 2 3", "ctxt 42", ""].join("\n");
}
function netDev(txBytes: number): string {
  return [
    "Inter-|   Receive                                                |  Transmit",
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed",
    "    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0",
    `  eth0: 9999999   88888    0    0    0     0          0         0 ${txBytes}   77777    0    0    0     0       0          0`,
    "",
  ].join("\n");
}

describe("counters", () => {
  it("reads CPU jiffies and counts logical CPUs", () => {
    expect(parseProcStat(procStat(100, 50, 850))).toEqual({ idle: 850, total: 1000, cores: 2 });
    expect(coresUsed({ idle: 850, total: 1000, cores: 2 }, { idle: 1150, total: 1600, cores: 2 })).toBeCloseTo(1, 12);
  });

  it("reads an interface's transmitted bytes", () => {
    expect(parseTxBytes(netDev(5_000_000), "eth0")).toBe(5_000_000);
    expect(() => parseTxBytes(netDev(1), "ens3")).toThrow('/proc/net/dev has no counters for interface "ens3"');
    expect(interfaceNames(netDev(1))).toEqual(["lo", "eth0"]);
  });

  it("reads nginx's stub_status", () => {
    expect(parseStubStatus("Active connections: 2 \nserver accepts handled requests\n 10 10 31 \nReading: 0 Writing: 1 Waiting: 1 \n")).toEqual({
      active: 2,
      accepts: 10,
      handled: 10,
      requests: 31,
    });
    expect(() => parseStubStatus("<html>")).toThrow("not an nginx stub_status page");
  });

  it("takes a counter that went down as reset", () => {
    expect(growth(100, 130)).toBe(30);
    expect(growth(100, 7)).toBe(7);
  });
});

interface Received {
  body: string;
  timestamp: string;
  signature: string;
  report: InstanceManagerReport;
}

const ROOT = join(import.meta.dirname, "..", "..");
const MAIN = "automation/instance-manager/main.ts";
const START = new Date("2026-11-23T10:00:00Z");
/** The agent's default period: readings at whole multiples of it from START. */
const PERIOD_MS = 600_000;

describe("the instance manager against a real nginx edge and a real HTTP receiver", () => {
  const servers: RunningNginx[] = [];
  let edgePort: number;
  let receiver: Server;
  let endpoint: string;
  let received: Received[];
  /** Every body POSTed, answered or not. */
  let bodies: string[];
  /** Answers to give, in order, before answering 204: a status, or "drop" to hang up. */
  let script: (number | "drop")[];
  let proc: string;
  let clock: Date;
  let sleeps: number[];

  beforeAll(async () => {
    const root = mkdtempSync(join(tmpdir(), "im-origin-"));
    mkdirSync(join(root, "img"));
    writeFileSync(join(root, "img", "a.png"), "png");
    chmodSync(root, 0o755);
    const [originPort, port] = await Promise.all([freePort(), freePort()]);
    servers.push(await startNginx("im-origin", originConfig(originPort, root), originPort));
    servers.push(await startNginx("im-edge", edgeConfig({ role: "small", listen: { address: LOCAL, port }, upstream: `${LOCAL}:${originPort}`, statusAllow: [LOCAL], workers: 1 }), port));
    edgePort = port;

    receiver = createServer((request: IncomingMessage, response) => {
      let body = "";
      request.on("data", (chunk: Buffer) => (body += chunk.toString()));
      request.on("end", () => {
        bodies.push(body);
        const next = script.shift();
        if (next === "drop") {
          request.socket.destroy();
          return;
        }
        if (next !== undefined) {
          response.writeHead(next).end();
          return;
        }
        received.push({ body, timestamp: String(request.headers[TIMESTAMP_HEADER]), signature: String(request.headers[SIGNATURE_HEADER]), report: parseReport(JSON.parse(body)) });
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, LOCAL, resolve));
    const address = receiver.address();
    endpoint = `http://${LOCAL}:${typeof address === "object" && address !== null ? address.port : 0}/v1/pops/vienna/reports`;
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await new Promise((resolve) => receiver.close(resolve));
  });

  beforeEach(() => {
    received = [];
    bodies = [];
    script = [];
    sleeps = [];
    proc = mkdtempSync(join(tmpdir(), "im-proc-"));
    mkdirSync(join(proc, "net"));
    clock = START;
  });

  function setProc(user: number, idle: number, txBytes: number): void {
    writeFileSync(join(proc, "stat"), procStat(user, 0, idle));
    writeFileSync(join(proc, "net", "dev"), netDev(txBytes));
  }
  const userRequests = async (count: number) => {
    for (let i = 0; i < count; i++) {
      await (await fetch(`http://${LOCAL}:${edgePort}/img/a.png`)).text();
    }
  };

  /**
   * Runs an instance manager in virtual time (its clock moves only when it sleeps): `periods[k]`
   * runs just before the reading that closes period k; the run stops before the reading after
   * the last. Resolves with the lines it logged.
   */
  async function runPeriods(periods: ((manager: InstanceManager) => Promise<void>)[]): Promise<string[]> {
    const stop = new AbortController();
    const logs: string[] = [];
    const steps = [...periods];
    const manager: InstanceManager = new InstanceManager({
      pop: "vienna",
      host: "host1",
      parentInterface: "eth0",
      linkMbps: 1000,
      edges: [{ role: "small", statusUrl: `http://${LOCAL}:${edgePort}${STATUS_PATH}` }],
      endpoint,
      key: KEY,
      statFile: join(proc, "stat"),
      netDevFile: join(proc, "net", "dev"),
      now: () => clock,
      sleep: async (ms) => {
        sleeps.push(ms);
        const after = clock.getTime() + ms;
        const periodOf = (time: number) => Math.floor((time - START.getTime()) / PERIOD_MS);
        if (periodOf(after) > periodOf(clock.getTime())) {
          const step = steps.shift();
          if (step === undefined) {
            stop.abort();
            return;
          }
          await step(manager);
        }
        clock = new Date(after);
      },
      log: (line) => logs.push(line),
    });
    await manager.run(stop.signal);
    return logs;
  }

  it("reports a period's CPU, traffic and user requests, signed with the host's key and the time of sending", async () => {
    setProc(1000, 9000, 10_000_000);
    const logs = await runPeriods([
      async () => {
        await userRequests(7);
        setProc(1000 + 3000, 9000 + 9000, 10_000_000 + 75_000_000);
      },
    ]);

    expect(logs).toEqual([]);
    expect(received).toHaveLength(1);
    const [{ body, timestamp, signature, report }] = received as [Received];
    expect(report).toEqual({
      pop: "vienna",
      host: "host1",
      periodStart: "2026-11-23T10:00:00.000Z",
      periodEnd: "2026-11-23T10:10:00.000Z",
      cpu: { capacityCores: 2, usedCores: 0.5 },
      network: { linkMbps: 1000, txMbps: 1 },
      requests: { small: 7, large: 0, vod: 0, live: 0 },
    });
    expect(timestamp).toBe(String(Date.parse("2026-11-23T10:10:00Z") / 1000));
    expect(verify(body, signature, timestamp, KEY)).toBe(true);
    expect(verify(body, signature, timestamp, "another host's key")).toBe(false);
    expect(verify(body, signature, String(Number(timestamp) + 1), KEY)).toBe(false);
    expect(verify(body.replace('"small":7', '"small":8'), signature, timestamp, KEY)).toBe(false);
  });

  it("retries with backoff and sends the same report, never a recount", async () => {
    setProc(0, 1000, 0);
    await runPeriods([
      async () => {
        await userRequests(3);
        setProc(100, 1900, 1000);
        script = [503, "drop"];
      },
    ]);
    expect(sleeps.slice(1, 3)).toEqual([1000, 2000]);
    expect(bodies).toHaveLength(3);
    expect(new Set(bodies).size).toBe(1);
    expect(received).toHaveLength(1);
    expect(received[0]!.report.requests.small).toBe(3);
  });

  it("keeps reports while the service is unreachable and delivers them in order; every request counted once", async () => {
    setProc(0, 1000, 0);
    let made = 0;
    const period = (index: number) => async (manager: InstanceManager) => {
      // Before the reading that closes this period, the reports of the periods that failed wait.
      expect(manager.pending).toHaveLength(index === 3 ? 1 : index === 4 ? 2 : 0);
      await userRequests(index * 2);
      made += index * 2;
      setProc(100 * index, 1000 + 900 * index, 1000 * index);
      // Periods 2 and 3: every attempt fails, the first report's as well as the second's.
      script = index === 2 || index === 3 ? Array.from({ length: 5 }, () => 503) : [];
    };
    const logs = await runPeriods([1, 2, 3, 4].map(period));

    expect(logs).toHaveLength(2);
    expect(logs.every((line) => line.includes("after 5 attempts (last: HTTP 503)"))).toBe(true);
    const reports = received.map((entry) => entry.report);
    expect(reports.map((report) => report.periodStart)).toEqual(["10:00", "10:10", "10:20", "10:30"].map((time) => `2026-11-23T${time}:00.000Z`));
    reports.slice(1).forEach((report, index) => expect(report.periodStart).toBe(reports[index]!.periodEnd));
    expect(reports.reduce((sum, report) => sum + report.requests.small, 0)).toBe(made);
  });
});

/** An environment main.ts starts with, reading fixture /proc files; `overrides` replace or (undefined) remove variables. */
function agentEnvironment(proc: string, endpoint: string, overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    POP: "vienna",
    HOST: "host1",
    PARENT_INTERFACE: "eth0",
    LINK_MBPS: "1000",
    EDGES: "[]",
    REPORT_ENDPOINT: endpoint,
    REPORT_KEY: KEY,
    STAT_FILE: join(proc, "stat"),
    NET_DEV_FILE: join(proc, "net", "dev"),
    ...overrides,
  };
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

function fixtureProc(): string {
  const proc = mkdtempSync(join(tmpdir(), "im-main-"));
  mkdirSync(join(proc, "net"));
  writeFileSync(join(proc, "stat"), procStat(100, 50, 850));
  writeFileSync(join(proc, "net", "dev"), netDev(1000));
  return proc;
}

/** main.ts as the image runs it, to its end; a process that does not end is killed, and the test then fails on its status. */
function runMain(env: Record<string, string>): { status: number | null; lines: string[] } {
  const result = spawnSync(process.execPath, ["--import", "tsx", MAIN], { cwd: ROOT, env, encoding: "utf8", timeout: 20_000 });
  return { status: result.status, lines: result.stderr.split("\n").filter((line) => line !== "") };
}

describe("the instance manager's process", () => {
  // Nothing listens on port 1 of 127.0.0.1: none of these gets as far as sending.
  const NOWHERE = "http://127.0.0.1:1/r";

  it("refuses a bad environment, naming the variables and never printing the key", () => {
    const { status, lines } = runMain(agentEnvironment(fixtureProc(), NOWHERE, { EDGES: "not json", REPORT_KEY: "secret-key" }));
    expect(status).toBe(2);
    expect(lines).toEqual([
      'instance manager: EDGES must be JSON [{ "role": <edge role>, "statusUrl": <url> }], e.g. [{ "role": "small", "statusUrl": "http://192.0.2.20/pop-status" }]',
      "instance manager: REPORT_KEY must be at least 16 characters; give this host's report key, as the PoP stack's reportKeys holds it",
    ]);
  });

  it.each([
    ["a period past a day, which would overflow Node's timers", { PERIOD_SECONDS: "86401" }, () => "instance manager: PERIOD_SECONDS 86401 is more than 86400; give the seconds between reports, e.g. 600"],
    ["a link in kbit/s", { LINK_MBPS: "1000000" }, () => "instance manager: LINK_MBPS 1000000 is more than 800000; give the interface's capacity in Mbit/s, e.g. 1000"],
    [
      "a missing stat file",
      { STAT_FILE: "$proc/no-stat" },
      (proc: string) => `instance manager: STAT_FILE "${proc}/no-stat" cannot be read (ENOENT); give the path of the host's /proc/stat`,
    ],
    [
      "a missing net/dev file",
      { NET_DEV_FILE: "$proc/1/net/dev" },
      (proc: string) =>
        `instance manager: NET_DEV_FILE "${proc}/1/net/dev" cannot be read (ENOENT); give the path of the host's /proc/net/dev (in a container with the host's /proc at /host/proc, "/host/proc/1/net/dev")`,
    ],
    [
      "an interface the host does not have",
      { PARENT_INTERFACE: "ens3" },
      (proc: string) => `instance manager: PARENT_INTERFACE "ens3" is not in "${proc}/net/dev", which lists lo, eth0; name the host interface the edges send through`,
    ],
  ])("exits at start, with one line, on %s", (_case, overrides: Record<string, string>, line: (proc: string) => string) => {
    const proc = fixtureProc();
    const env = Object.fromEntries(Object.entries(overrides).map(([name, value]) => [name, value.replace("$proc", proc)]));
    const { status, lines } = runMain(agentEnvironment(proc, NOWHERE, env));
    expect(lines).toEqual([line(proc)]);
    expect(status).toBe(2);
  });

  it.each([
    ["while a send hangs", "hang"],
    ["while it waits to retry", "503"],
  ] as const)("stops promptly on SIGTERM %s", async (_case, answer) => {
    const requests: ServerResponse[] = [];
    const receiver = createServer((request, response) => {
      request.resume();
      request.on("end", () => {
        requests.push(response);
        if (answer === "503") {
          response.writeHead(503).end();
        }
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, LOCAL, resolve));
    const address = receiver.address();
    const endpoint = `http://${LOCAL}:${typeof address === "object" && address !== null ? address.port : 0}/r`;
    const child = spawn(process.execPath, ["--import", "tsx", MAIN], { cwd: ROOT, env: agentEnvironment(fixtureProc(), endpoint, { PERIOD_SECONDS: "1" }), stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      // The first report goes one period after the first reading; its send is then in flight or answered.
      await poll("the agent's first send", async () => requests.length, (count) => count >= 1, 20_000);
      child.kill("SIGTERM");
      // docker stop waits 10 s before SIGKILL; the agent must be gone well before.
      const code = await Promise.race([exited, delay(8000).then(() => "still running" as const)]);
      expect(code).toBe(0);
      expect(stderr).toBe("");
    } finally {
      child.kill("SIGKILL");
      receiver.closeAllConnections();
      await new Promise((resolve) => receiver.close(resolve));
    }
  });
});
