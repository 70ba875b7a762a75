/**
 * A simulated day of the PoP loop (issue 17, "Must show"), through the real service over HTTP on
 * the offline engine, the clock accelerated: the real instance-manager code on every host, its
 * /proc files and its edges' stub_status pages fed by a generator, 144 ten-minute periods, on the
 * paper's three hosts and on 30. The PoP starts as the paper's static PoP (one edge of each type
 * per host).
 *
 * Demand is shaped like the paper's Fig. 1 (Medianova, Vienna): small files high all day, large
 * files lower and quietest around midnight, live streaming peaking at 00:00; the volume swings 2:1
 * between the evening peak (21:00) and the early morning. Hosts differ in cores, link and
 * background load (seeded).
 *
 * Printed, over the day: edge containers per period and container-hours beside the static PoP and
 * beside the per-period optimum without stability rules (computeLayout from nothing, every period);
 * the share of periods whose running layout is within ±0.1 of the demand (goal ≥ 95 %); on/off
 * transitions per edge slot (host × role) per day (goal ≤ 1, the Akamai figure); edges moved per
 * period; re-ups per day; the decision's time and the loop's own time per period (decision + re-up).
 */
import "../../runtime/node-version.ts"; // first: refuses an unsupported Node before any other module runs
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { stringify } from "yaml";
import type { PopSpec } from "../../domain/contracts/cdn-pop.ts";
import { DEFAULT_TOLERANCE, type Host, type Layout, ROLES, type Role, type RoleCounts, computeLayout, demandShares, hostWeight, resourceShares, worstError } from "../../domain/wae/index.ts";
import { InstanceManager } from "../../automation/instance-manager/agent.ts";
import { newToken, tokenEntry } from "../../automation/service/auth.ts";
import { type RunningService, startService } from "../../automation/service/server.ts";
import type { PopView } from "../../automation/service/loops/pop-loop.ts";
import type { PopModel } from "../../automation/service/loops/pop-config.ts";
import type { PopDecision } from "../../automation/store/records.ts";
import { highsSolver } from "../../automation/solver/highs.ts";
import { carried } from "../../domain/wae/milp.ts";
import { toMatrix } from "../../domain/wae/problem.ts";
import { poll } from "../support/poll.ts";
import { VirtualClock } from "../support/virtual-clock.ts";

const PERIOD_MS = 600_000;
const GRACE_MS = 30_000;
const PERIODS = 144;
const SIZES = (process.env.POP_DAY_SIZES ?? "3,30").split(",").map(Number);
const SEED = 20261207;
/** Midnight: the day starts at the live peak. */
const T0 = Date.parse("2026-12-07T00:00:00Z");
/** Requests per second per host on average over the day. */
const RPS_PER_HOST = 400;
/** Core-seconds and bytes one request of each role costs its edge's host. */
const CPU_SECONDS: RoleCounts = { small: 0.0015, large: 0.006, vod: 0.004, live: 0.003 };
const BYTES: RoleCounts = { small: 20_000, large: 2_000_000, vod: 600_000, live: 250_000 };
/** How long each wait on the service may take; a 5 ms poll keeps the day quick. */
const WAIT_MS = 60_000;
const POLL_MS = 5;
/** POP_DAY_TRACE=1 prints each period's demand, layout and decision. */
const trace: string[] = [];

/** The hour of day, 0–24, of `at`. */
const hourOf = (at: number) => (((at - T0) / 3_600_000) % 24 + 24) % 24;
/** Distance in hours around the clock. */
const hoursFrom = (hour: number, peak: number) => Math.min(Math.abs(hour - peak), 24 - Math.abs(hour - peak));
const bump = (hour: number, peak: number, width: number) => Math.exp(-((hoursFrom(hour, peak) / width) ** 2) / 2);

/** Requests of each role in the period around `at`: Fig. 1's mix, the volume 2:1 from 21:00 to 09:00. */
function demandAt(at: number, hosts: number, noise: () => number): RoleCounts {
  const hour = hourOf(at);
  const volume = RPS_PER_HOST * hosts * (PERIOD_MS / 1000) * (1 + Math.cos((2 * Math.PI * (hour - 21)) / 24) / 3);
  const weights: RoleCounts = {
    small: 0.5,
    large: 0.08 + 0.12 * (1 - bump(hour, 0, 4)),
    vod: 0.12 + 0.08 * bump(hour, 21, 3),
    live: 0.04 + 0.36 * bump(hour, 0, 2),
  };
  const total = ROLES.reduce((sum, role) => sum + weights[role], 0);
  return Object.fromEntries(ROLES.map((role) => [role, Math.round((volume * weights[role] * noise()) / total)])) as RoleCounts;
}

interface SimHost {
  name: string;
  cores: number;
  linkMbps: number;
  backgroundCores: number;
  statFile: string;
  netDevFile: string;
  busyJiffies: number;
  idleJiffies: number;
  txBytes: number;
}

function popSpecOf(name: string, hosts: readonly SimHost[]): PopSpec {
  const layout: Layout = Object.fromEntries(hosts.map((host) => [host.name, [...ROLES]]));
  const addresses: Record<string, string> = {
    [`${hosts[0]!.name}/lb`]: "10.0.0.10",
    [`${hosts[1 % hosts.length]!.name}/mid`]: "10.0.0.11",
    [`${hosts[2 % hosts.length]!.name}/dns`]: "10.0.0.12",
  };
  let next = 20;
  for (const host of hosts) {
    addresses[`${host.name}/im`] = `10.0.${Math.floor(next / 250)}.${(next % 250) + 1}`;
    next++;
    for (const role of ROLES) {
      addresses[`${host.name}/${role}`] = `10.0.${Math.floor(next / 250)}.${(next % 250) + 1}`;
      next++;
    }
  }
  return {
    name,
    registry: "registry.example.org/switch-vaas",
    imageTag: "0.1.0",
    zone: `${name}.cdn.example.org`,
    reportEndpoint: `https://switch-vaas.example.org/v1/pops/${name}/reports`,
    origin: "origin.example.org:80",
    hosts: hosts.map((host) => ({ name: host.name, dockerHost: `ssh://pop@${host.name}.example.org`, parentInterface: "eth0", subnet: "10.0.0.0/22", gateway: "10.0.0.1" })),
    layout,
    addresses,
  } as PopSpec;
}

function writeSources(host: SimHost): void {
  const cpuLine = (busy: number, idle: number) => `${busy} 0 0 ${idle} 0 0 0 0 0 0`;
  const perCore = Array.from({ length: host.cores }, (_, core) => `cpu${core} ${cpuLine(Math.round(host.busyJiffies / host.cores), Math.round(host.idleJiffies / host.cores))}`);
  writeFileSync(host.statFile, [`cpu  ${cpuLine(Math.round(host.busyJiffies), Math.round(host.idleJiffies))}`, ...perCore, ""].join("\n"));
  writeFileSync(
    host.netDevFile,
    `Inter-|   Receive                            |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n  eth0: 0 0 0 0 0 0 0 0 ${Math.round(host.txBytes)} 0 0 0 0 0 0 0\n`,
  );
}

interface DayFigures {
  hosts: number;
  model: PopModel;
  /** Requests in each period, all roles. */
  volume: number[];
  /** Periods in which some role's demand was more than the running layout could carry (true costs and host capacity). */
  exceededLoop: number;
  exceededStatic: number;
  /** Each period's slack: the share of the running edges' capacity left unused. */
  slackLoop: number[];
  slackStatic: number[];
  loopContainers: number[];
  optimumContainers: number[];
  staticContainers: number;
  withinLoop: number;
  withinStatic: number;
  withinOptimum: number;
  transitionsLoop: number;
  transitionsOptimum: number;
  moved: number[];
  reUps: number;
  failedReUps: number;
  decisionMs: number[];
  loopMs: number[];
  refusedReports: number;
  agentComplaints: string[];
}

async function json<T>(url: string, token: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(url, { ...init, headers: { authorization: `Bearer ${token}`, ...init.headers } });
  if (!response.ok) {
    throw new Error(`${init.method ?? "GET"} ${url}: HTTP ${response.status} ${await response.text()}`);
  }
  return (await response.json()) as T;
}


/** On/off transitions of (host, role) slots along a sequence of layouts. */
function transitions(layouts: readonly Layout[], hosts: readonly string[]): number {
  let count = 0;
  for (let index = 1; index < layouts.length; index++) {
    for (const host of hosts) {
      for (const role of ROLES) {
        const before = layouts[index - 1]![host]?.includes(role) ?? false;
        const after = layouts[index]![host]?.includes(role) ?? false;
        count += before === after ? 0 : 1;
      }
    }
  }
  return count;
}

const containersOf = (layout: Layout) => Object.values(layout).reduce((sum, roles) => sum + roles.length, 0);

function movedBetween(from: Layout, to: Layout): number {
  return transitions([from, to], [...new Set([...Object.keys(from), ...Object.keys(to)])]);
}

/**
 * How far a layout's edges are used in a period, by the simulation's truth (each role's requests
 * split evenly among its edges, as the load balancer does; each host's edge capacity split evenly
 * among its edges): the share of the edges' capacity left unused, and whether some role's demand
 * exceeded what the layout could carry (an LP over the true costs, `carried`).
 */
function utilisation(hosts: readonly SimHost[], layout: Layout, demand: RoleCounts, solver: Awaited<ReturnType<typeof highsSolver>>): { slack: number; exceeded: boolean } {
  const seconds = PERIOD_MS / 1000;
  let unused = 0;
  let containers = 0;
  for (const host of hosts) {
    const roles = layout[host.name] ?? [];
    for (const role of roles) {
      const edges = hosts.filter((other) => layout[other.name]?.includes(role)).length;
      const rps = demand[role] / edges / seconds;
      const cpuShare = (host.cores - host.backgroundCores) / roles.length;
      const linkShare = host.linkMbps / roles.length;
      const used = Math.max((rps * CPU_SECONDS[role]) / cpuShare, (rps * BYTES[role] * 8) / 1e6 / linkShare);
      unused += 1 - Math.min(1, used);
      containers++;
    }
  }
  const capacity = {
    needRps: Float64Array.from(ROLES, (role) => demand[role] / seconds),
    cores: Float64Array.from(hosts, (host) => host.cores - host.backgroundCores),
    mbps: Float64Array.from(hosts, (host) => host.linkMbps),
    cpuCost: Float64Array.from(ROLES, (role) => CPU_SECONDS[role]),
    mbitCost: Float64Array.from(ROLES, (role) => (BYTES[role] * 8) / 1e6),
  };
  const got = carried(solver, { weights: new Float64Array(hosts.length), demand: new Float64Array(ROLES.length), tolerance: DEFAULT_TOLERANCE, capacity }, toMatrix(hosts.map((host) => host.name), layout));
  return { slack: containers === 0 ? 0 : unused / containers, exceeded: ROLES.some((_, r) => got[r]! < capacity.needRps[r]! * (1 - 1e-6)) };
}

/** Pearson's correlation of two series. */
function correlation(a: readonly number[], b: readonly number[]): number {
  const ma = mean(a);
  const mb = mean(b);
  let cov = 0;
  let va = 0;
  let vb = 0;
  a.forEach((value, i) => {
    cov += (value - ma) * (b[i]! - mb);
    va += (value - ma) ** 2;
    vb += (b[i]! - mb) ** 2;
  });
  return va === 0 || vb === 0 ? 0 : cov / Math.sqrt(va * vb);
}

async function simulateDay(size: number, model: PopModel): Promise<DayFigures> {
  const rng = xoroshiro128plus(SEED + size);
  const noise = () => 0.97 + uniformInt(rng, 0, 600) / 10_000;
  const dir = mkdtempSync(join(tmpdir(), `switch-pop-day-${size}-`));
  const popName = `sim${size}`;
  const hosts: SimHost[] = Array.from({ length: size }, (_, index) => ({
    name: `host${index + 1}`,
    cores: [4, 8, 16][uniformInt(rng, 0, 2)]!,
    linkMbps: [1000, 10_000][uniformInt(rng, 0, 1)]!,
    backgroundCores: uniformInt(rng, 0, 150) / 100,
    statFile: join(dir, `host${index + 1}.stat`),
    netDevFile: join(dir, `host${index + 1}.net-dev`),
    busyJiffies: 1000,
    idleJiffies: 100_000,
    txBytes: 0,
  }));
  const spec = popSpecOf(popName, hosts);
  const stackFile = join(dir, `Pulumi.pop-${popName}.yaml`);
  writeFileSync(stackFile, stringify({ config: { "switch-vaas:program": "cdn-pop", "switch-vaas:pop": spec } }));
  const keys = Object.fromEntries(hosts.map((host) => [host.name, `key-${host.name}-${SEED}-0123456789abcdef`]));
  const keysFile = join(dir, "pop-keys.json");
  writeFileSync(keysFile, JSON.stringify({ [popName]: keys }));
  chmodSync(keysFile, 0o600);
  for (const host of hosts) {
    writeSources(host);
  }

  // Each edge's stub_status page: its requests so far.
  const served = new Map<string, number>();
  const stubStatus: Server = createServer((request, response) => {
    const count = served.get(request.url?.slice(1) ?? "");
    if (count === undefined) {
      response.writeHead(404).end();
      return;
    }
    served.set(request.url!.slice(1), count + 1);
    response.end(`Active connections: 1 \nserver accepts handled requests\n ${count + 1} ${count + 1} ${count + 1} \nReading: 0 Writing: 1 Waiting: 0 \n`);
  });
  await new Promise<void>((resolve) => stubStatus.listen(0, "127.0.0.1", resolve));
  const statusPort = (stubStatus.address() as AddressInfo).port;

  const clock = new VirtualClock(T0 - 2 * GRACE_MS);
  const token = newToken();
  let service: RunningService | undefined;
  const agents = new Map<string, { controller: AbortController; roles: Role[]; startedAt: number; run: Promise<void> }>();
  const agentComplaints: string[] = [];
  try {
    service = await startService(
      {
        SWITCH_ENGINE: "offline",
        SWITCH_DATA_DIR: join(dir, "data"),
        SWITCH_API_TOKENS: tokenEntry("ops", "admin", token),
        SWITCH_POPS: stackFile,
        SWITCH_POP_KEYS_FILE: keysFile,
        ...(model === "paper" ? { SWITCH_POP_MODELS: `${popName}=paper` } : {}),
        SWITCH_LOG_LEVEL: "silent",
        HOST: "127.0.0.1",
        PORT: "0",
      },
      { popClock: clock, popLoop: { graceMs: GRACE_MS }, print: () => undefined },
    );
    const base = `${service.url}/v1/pops/${popName}`;
    const view = () => json<PopView>(base, token);
    const newestDecision = async () => (await json<{ decisions: PopDecision[] }>(`${base}/decisions?limit=1`, token)).decisions[0];
    let running = (await poll("the static PoP's first up", view, (seen) => seen.pendingOperation === undefined && seen.lastDecision?.outcome === "applied", WAIT_MS, POLL_MS)).layout;

    const startAgent = (host: SimHost, roles: Role[]) => {
      const controller = new AbortController();
      for (const role of roles) {
        if (!served.has(`${host.name}/${role}`)) {
          served.set(`${host.name}/${role}`, 0);
        }
      }
      const manager = new InstanceManager({
        pop: popName,
        host: host.name,
        parentInterface: "eth0",
        linkMbps: host.linkMbps,
        edges: roles.map((role) => ({ role, statusUrl: `http://127.0.0.1:${statusPort}/${host.name}/${role}` })),
        endpoint: `${base}/reports`,
        key: keys[host.name]!,
        statFile: host.statFile,
        netDevFile: host.netDevFile,
        now: () => clock.date(),
        sleep: clock.sleep,
        log: (line) => agentComplaints.push(`${host.name}: ${line}`),
      });
      agents.set(host.name, { controller, roles, startedAt: clock.now(), run: manager.run(controller.signal) });
    };
    // The agents start at midnight, as the day does; the static PoP's edges run on every host.
    await clock.advanceTo(T0);
    for (const host of hosts) {
      startAgent(host, running[host.name] ?? []);
    }

    const figures: DayFigures = {
      hosts: size,
      model,
      volume: [],
      exceededLoop: 0,
      exceededStatic: 0,
      slackLoop: [],
      slackStatic: [],
      loopContainers: [],
      optimumContainers: [],
      staticContainers: size * ROLES.length,
      withinLoop: 0,
      withinStatic: 0,
      withinOptimum: 0,
      transitionsLoop: 0,
      transitionsOptimum: 0,
      moved: [],
      reUps: 0,
      failedReUps: 0,
      decisionMs: [],
      loopMs: [],
      refusedReports: 0,
      agentComplaints,
    };
    const solver = await highsSolver();
    const staticLayout: Layout = Object.fromEntries(hosts.map((host) => [host.name, [...ROLES]]));
    const loopLayouts: Layout[] = [running];
    const optimumLayouts: Layout[] = [];
    const names = hosts.map((host) => host.name);

    for (let period = 1; period <= PERIODS; period++) {
      const end = T0 + period * PERIOD_MS;
      // Every agent has taken its reading (a new one, its first) before the period's traffic is counted.
      await clock.asleep(agents.size + 1);
      // The period's traffic, served by the layout that runs during it.
      const demand = demandAt(end - PERIOD_MS / 2, size, noise);
      const seconds = PERIOD_MS / 1000;
      const truth: Host[] = [];
      const load = new Map(hosts.map((host) => [host.name, { cores: host.backgroundCores, bytes: 0 }]));
      for (const role of ROLES) {
        const edges = hosts.filter((host) => running[host.name]?.includes(role));
        for (const host of edges) {
          const requests = demand[role] / edges.length;
          served.set(`${host.name}/${role}`, (served.get(`${host.name}/${role}`) ?? 0) + Math.round(requests));
          load.get(host.name)!.cores += (requests * CPU_SECONDS[role]) / seconds;
          load.get(host.name)!.bytes += requests * BYTES[role];
        }
      }
      for (const host of hosts) {
        const { cores, bytes } = load.get(host.name)!;
        const used = Math.min(cores, host.cores * 0.95);
        host.busyJiffies += used * 100 * seconds;
        host.idleJiffies += (host.cores - used) * 100 * seconds;
        host.txBytes += bytes;
        writeSources(host);
        truth.push({ name: host.name, cpu: { capacityCores: host.cores, usedCores: used }, network: { linkMbps: host.linkMbps, txMbps: Math.min(host.linkMbps, (bytes * 8) / 1e6 / seconds) } });
      }

      // How the layout that ran, the static PoP's and the per-period optimum's match the period's demand.
      const weights = new Map(truth.map((host) => [host.name, hostWeight(host)]));
      const shares = demandShares(demand);
      const within = (layout: Layout) => (worstError(resourceShares(layout, weights), shares) <= DEFAULT_TOLERANCE + 1e-9 ? 1 : 0);
      figures.withinLoop += within(running);
      if (process.env.POP_DAY_TRACE !== undefined) {
        const fmt = (counts: RoleCounts) => ROLES.map((role) => counts[role].toFixed(2)).join(" ");
        trace.push(`p${period} ${hourOf(end).toFixed(1)}h demand ${fmt(shares)} loop ${fmt(resourceShares(running, weights))} err ${worstError(resourceShares(running, weights), shares).toFixed(3)} ${JSON.stringify(running)}`);
      }
      figures.withinStatic += within(staticLayout);
      figures.loopContainers.push(containersOf(running));
      figures.volume.push(ROLES.reduce((sum, role) => sum + demand[role], 0));
      const loopUse = utilisation(hosts, running, demand, solver);
      const staticUse = utilisation(hosts, staticLayout, demand, solver);
      figures.slackLoop.push(loopUse.slack);
      figures.slackStatic.push(staticUse.slack);
      figures.exceededLoop += loopUse.exceeded ? 1 : 0;
      figures.exceededStatic += staticUse.exceeded ? 1 : 0;
      const optimum = computeLayout({ hosts: truth, requests: demand, current: {} }, solver);
      optimumLayouts.push(optimum.layout);
      figures.optimumContainers.push(optimum.containers);
      figures.withinOptimum += within(optimum.layout);

      // The readings at the period's end reach the service; then the loop decides, and re-ups.
      await clock.advanceTo(end);
      await poll(`period ${period}'s reports`, view, (seen) =>
        [...agents.entries()].every(([host, agent]) => {
          const due = agent.startedAt + Math.floor((end - agent.startedAt) / PERIOD_MS) * PERIOD_MS;
          const last = seen.lastReports[host];
          return due === agent.startedAt || (last !== undefined && Date.parse(last) >= due);
        }),
        WAIT_MS,
        POLL_MS,
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; the agents said: ${agentComplaints.join(" | ") || "nothing"}`);
      });
      await clock.asleep(agents.size + 1);
      const started = performance.now();
      await clock.advanceTo(end + GRACE_MS);
      const decision = await poll(`period ${period}'s decision`, newestDecision, (seen) => seen !== undefined && Date.parse(seen.periodStart) === end - PERIOD_MS, WAIT_MS, POLL_MS);
      const settled = await poll(`period ${period}'s re-up`, view, (seen) => seen.pendingOperation === undefined, WAIT_MS, POLL_MS);
      figures.loopMs.push(performance.now() - started);
      figures.decisionMs.push(decision!.timings.totalMs ?? 0);
      if (process.env.POP_DAY_TRACE !== undefined) {
        trace.push(`   -> ${decision!.outcome}: ${decision!.reason ?? ""}`);
      }
      if (decision!.outcome === "applying") {
        figures.reUps++;
        const outcome = (await json<{ decisions: PopDecision[] }>(`${base}/decisions?limit=5`, token)).decisions.find((candidate) => candidate.id === decision!.id)!.outcome;
        figures.failedReUps += outcome === "failed" ? 1 : 0;
      }
      figures.moved.push(movedBetween(running, settled.layout));
      // A host whose edges changed gets a new instance manager, as the re-up replaces its container.
      for (const host of hosts) {
        const before = running[host.name] ?? [];
        const after = settled.layout[host.name] ?? [];
        if (before.join() !== after.join()) {
          agents.get(host.name)!.controller.abort();
          startAgent(host, after);
        }
      }
      running = settled.layout;
      loopLayouts.push(running);
    }
    figures.transitionsLoop = transitions(loopLayouts, names);
    figures.transitionsOptimum = transitions([loopLayouts[0]!, ...optimumLayouts], names);
    const metrics = await (await fetch(`${service.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    figures.refusedReports = [...metrics.matchAll(/^switch_pop_reports_total\{[^}]*outcome="(?!accepted|duplicate)[^"]+"[^}]*\} (\d+)/gm)].reduce((sum, match) => sum + Number(match[1]), 0);
    return figures;
  } finally {
    for (const agent of agents.values()) {
      agent.controller.abort();
    }
    await Promise.allSettled([...agents.values()].map((agent) => agent.run));
    await service?.close();
    stubStatus.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const mean = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);
const hours = (containers: readonly number[]) => (containers.reduce((sum, value) => sum + value, 0) * PERIOD_MS) / 3_600_000;
const percent = (count: number) => `${((100 * count) / PERIODS).toFixed(1)} %`;

console.log(`a simulated day: ${PERIODS} periods of ${PERIOD_MS / 60_000} min, Fig. 1's mix, volume 2:1 (seed ${SEED}); the loop with the paper's model (mix alone) and with issue 19's (mix and volume), the static PoP beside both`);
const MODELS = (process.env.POP_DAY_MODELS ?? "paper,volume").split(",") as PopModel[];
for (const size of SIZES) {
  const days: DayFigures[] = [];
  for (const model of MODELS) {
    days.push(await simulateDay(size, model));
    if (trace.length > 0) {
      console.log(trace.splice(0).join("\n"));
    }
  }
  const slots = size * ROLES.length;
  const first = days[0]!;
  const staticHours = hours(Array(PERIODS).fill(first.staticContainers));
  const columns = (label: string, staticValue: string, value: (day: DayFigures) => string) => console.log(`  ${label.padEnd(34)}${staticValue.padStart(14)}${days.map((day) => value(day).padStart(16)).join("")}`);
  console.log(`\n${size} hosts (${slots} edge slots):`);
  console.log(`  ${"".padEnd(34)}${"static PoP".padStart(14)}${days.map((day) => `loop, ${day.model}`.padStart(16)).join("")}`);
  columns("edge containers per period, mean", String(first.staticContainers), (day) => `${mean(day.loopContainers).toFixed(1)} (${Math.min(...day.loopContainers)}-${Math.max(...day.loopContainers)})`);
  columns("container-hours", staticHours.toFixed(0), (day) => `${hours(day.loopContainers).toFixed(0)} (${(hours(day.loopContainers) / staticHours).toFixed(2)}x)`);
  columns("slack (unused, of container-hours)", `${(100 * mean(first.slackStatic)).toFixed(1)} %`, (day) => `${(100 * mean(day.slackLoop)).toFixed(1)} %`);
  columns("containers ~ volume (correlation)", "0", (day) => correlation(day.loopContainers, day.volume).toFixed(2));
  columns("periods demand > capacity", String(first.exceededStatic), (day) => String(day.exceededLoop));
  columns(`periods within ±${DEFAULT_TOLERANCE}`, percent(first.withinStatic), (day) => percent(day.withinLoop));
  columns("on/off transitions per slot per day", "0", (day) => (day.transitionsLoop / slots).toFixed(2));
  columns("edges moved per period, mean (max)", "0", (day) => `${mean(day.moved).toFixed(2)} (${Math.max(...day.moved)})`);
  columns("re-ups per day (failed)", "0", (day) => `${day.reUps} (${day.failedReUps})`);
  columns("decision time, mean (max) ms", "-", (day) => `${mean(day.decisionMs).toFixed(0)} (${Math.max(...day.decisionMs).toFixed(0)})`);
  columns("loop time per period, mean ms", "-", (day) => mean(day.loopMs).toFixed(0));
  columns("reports refused; agent complaints", "-", (day) => `${day.refusedReports}; ${day.agentComplaints.length}`);
  console.log(`  per-period optimum of the mix alone, no stability rules: ${mean(first.optimumContainers).toFixed(1)} edges, ${(first.transitionsOptimum / slots).toFixed(2)} transitions per slot, ${percent(first.withinOptimum)} within ±${DEFAULT_TOLERANCE}`);
}
