import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { type IncomingMessage, type Server, createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { InstanceManager } from "../../automation/instance-manager/agent.ts";
import { SIGNATURE_HEADER, verify } from "../../domain/wae/signature.ts";
import { coresUsed, growth, parseProcStat, parseStubStatus, parseTxBytes } from "../../automation/instance-manager/counters.ts";
import { type InstanceManagerReport, parseReport } from "../../domain/wae/reports.ts";
import { STATUS_PATH, edgeConfig } from "../../components/cdn-pop/nginx.ts";
import { type RunningNginx, freePort, originConfig, startNginx } from "../support/nginx.ts";

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
  signature: string;
  report: InstanceManagerReport;
}

describe("the instance manager against a real nginx edge and a real HTTP receiver", () => {
  const servers: RunningNginx[] = [];
  let edgePort: number;
  let receiver: Server;
  let endpoint: string;
  let received: Received[];
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
        const next = script.shift();
        if (next === "drop") {
          request.socket.destroy();
          return;
        }
        if (next !== undefined) {
          response.writeHead(next).end();
          return;
        }
        received.push({ body, signature: String(request.headers[SIGNATURE_HEADER]), report: parseReport(JSON.parse(body)) });
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
    script = [];
    sleeps = [];
    proc = mkdtempSync(join(tmpdir(), "im-proc-"));
    mkdirSync(join(proc, "net"));
    clock = new Date("2026-11-23T10:00:00Z");
  });

  function setProc(user: number, idle: number, txBytes: number): void {
    writeFileSync(join(proc, "stat"), procStat(user, 0, idle));
    writeFileSync(join(proc, "net", "dev"), netDev(txBytes));
  }
  const advance = (minutes: number) => (clock = new Date(clock.getTime() + minutes * 60_000));
  const userRequests = async (count: number) => {
    for (let i = 0; i < count; i++) {
      await (await fetch(`http://${LOCAL}:${edgePort}/img/a.png`)).text();
    }
  };
  const manager = () =>
    new InstanceManager({
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
      },
    });

  it("reports a period's CPU, traffic and user requests, signed with the host's key", async () => {
    const im = manager();
    setProc(1000, 9000, 10_000_000);
    await im.tick();
    expect(received).toHaveLength(0);

    await userRequests(7);
    advance(10);
    setProc(1000 + 3000, 9000 + 9000, 10_000_000 + 75_000_000);
    await im.tick();

    expect(received).toHaveLength(1);
    const [{ body, signature, report }] = received as [Received];
    expect(report).toEqual({
      pop: "vienna",
      host: "host1",
      periodStart: "2026-11-23T10:00:00.000Z",
      periodEnd: "2026-11-23T10:10:00.000Z",
      cpu: { capacityCores: 2, usedCores: 0.5 },
      network: { linkMbps: 1000, txMbps: 1 },
      requests: { small: 7, large: 0, vod: 0, live: 0 },
    });
    expect(verify(body, signature, KEY)).toBe(true);
    expect(verify(body, signature, "another host's key")).toBe(false);
    expect(verify(body.replace('"small":7', '"small":8'), signature, KEY)).toBe(false);
  });

  it("retries with backoff and sends the same report, never a recount", async () => {
    const im = manager();
    setProc(0, 1000, 0);
    await im.tick();
    await userRequests(3);
    advance(10);
    setProc(100, 1900, 1000);
    script = [503, "drop"];
    await im.tick();
    expect(sleeps).toEqual([1000, 2000]);
    expect(received).toHaveLength(1);
    expect(received[0]!.report.requests.small).toBe(3);
  });

  it("keeps reports while the service is unreachable and delivers them in order; every request counted once", async () => {
    const im = manager();
    setProc(0, 1000, 0);
    await im.tick();
    let made = 0;
    for (let period = 1; period <= 4; period++) {
      await userRequests(period * 2);
      made += period * 2;
      advance(10);
      setProc(100 * period, 1000 + 900 * period, 1000 * period);
      // Periods 2 and 3: every attempt fails.
      script = period === 2 || period === 3 ? Array.from({ length: 5 }, () => 503) : [];
      await im.tick();
      if (period === 2 || period === 3) {
        expect(im.pending).toHaveLength(period - 1);
      }
    }
    expect(im.pending).toHaveLength(0);
    const reports = received.map((entry) => entry.report);
    expect(reports.map((report) => report.periodStart)).toEqual(["10:00", "10:10", "10:20", "10:30"].map((time) => `2026-11-23T${time}:00.000Z`));
    reports.slice(1).forEach((report, index) => expect(report.periodStart).toBe(reports[index]!.periodEnd));
    expect(reports.reduce((sum, report) => sum + report.requests.small, 0)).toBe(made);
  });

  it("sets aside a report the service refuses for good, so later ones still go", async () => {
    const im = manager();
    setProc(0, 1000, 0);
    await im.tick();
    advance(10);
    setProc(100, 1900, 1000);
    script = [400];
    await im.tick();
    expect(im.rejected.map((entry) => entry.status)).toEqual([400]);
    advance(10);
    setProc(200, 2800, 2000);
    await im.tick();
    expect(received).toHaveLength(1);
    expect(im.pending).toHaveLength(0);
  });
});

describe("the instance manager's process", () => {
  it("refuses a bad environment, naming the variables and never printing the key", () => {
    const result = spawnSync(process.execPath, ["--import", "tsx", "automation/instance-manager/main.ts"], {
      cwd: join(import.meta.dirname, "..", ".."),
      env: { PATH: process.env.PATH, POP: "vienna", HOST: "host1", PARENT_INTERFACE: "eth0", LINK_MBPS: "1000", EDGES: "not json", REPORT_ENDPOINT: "http://127.0.0.1:1/r", REPORT_KEY: "secret-key" },
      encoding: "utf8",
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('EDGES must be JSON [{ "role": <edge role>, "statusUrl": <url> }]');
    expect(result.stderr).toContain("REPORT_KEY must be at least 16 characters");
    expect(result.stderr).not.toContain("secret-key");
  });
});
