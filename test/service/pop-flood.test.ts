import autocannon from "autocannon";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, sign } from "../../domain/wae/signature.ts";
import { DEFAULT_POP_LOOP_SETTINGS } from "../../automation/service/loops/pop-loop.ts";
import { poll } from "../support/poll.ts";
import { type TestService, WAIT_TIMEOUT_MS, startTestService } from "../support/service.ts";
import { VirtualClock } from "../support/virtual-clock.ts";

/**
 * A bounded flood of forged reports on loopback while a period ends: the period is decided on the
 * hosts' genuine reports while the flood is still being refused — it waits for none of it — and
 * every forged report is refused and counted, none reaching a decision.
 */

const VIENNA = fileURLToPath(new URL("../../stacks/Pulumi.pop-vienna.yaml", import.meta.url));
const KEYS = { host1: randomBytes(32).toString("hex"), host2: randomBytes(32).toString("hex"), host3: randomBytes(32).toString("hex") };
const { periodMs, graceMs } = DEFAULT_POP_LOOP_SETTINGS;
const FLOOD = 4000;
const CONNECTIONS = 32;
/** A period boundary a little before now: the service's clock is virtual, the signatures' window is its. */
const T0 = Math.floor(Date.now() / periodMs) * periodMs;

const clock = new VirtualClock(T0 + 1000);
let service: TestService;

beforeAll(async () => {
  service = await startTestService({ pops: { stackFiles: [VIENNA], keys: { vienna: KEYS } }, popClock: clock });
  await poll("the first up of pop-vienna to converge", () => view(), (pop) => pop.pendingOperation === undefined && pop.lastDecision?.outcome === "applied", WAIT_TIMEOUT_MS);
}, 60_000);
afterAll(() => service?.close());

async function view(): Promise<{ pendingOperation?: number; lastDecision?: { id: number; outcome: string; periodStart: string; inputs: Record<string, unknown> } }> {
  const response = await service.call("/v1/pops/vienna", { token: service.tokens.admin });
  expect(response.status).toBe(200);
  return (await response.json()) as Awaited<ReturnType<typeof view>>;
}

async function forgedCount(): Promise<number> {
  const metrics = await (await service.call("/metrics", { token: service.tokens.admin })).text();
  return Number(/^switch_pop_reports_total\{pop="vienna",outcome="forged"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
}

function report(host: string, end: number): string {
  return JSON.stringify({
    pop: "vienna",
    host,
    periodStart: new Date(end - periodMs).toISOString(),
    periodEnd: new Date(end).toISOString(),
    cpu: { capacityCores: 8, usedCores: 2 },
    network: { linkMbps: 1000, txMbps: 120 },
    requests: { small: 400, large: 150, vod: 150, live: 100 },
  });
}

describe("a flood of forged reports on loopback", () => {
  it("does not hold back the period's decision, and is refused and counted to the last request", async () => {
    const end = T0 + periodMs;
    await clock.asleep(1);
    await clock.advanceTo(end + 1000);
    const stamp = Math.floor(clock.now() / 1000);
    for (const [host, key] of Object.entries(KEYS)) {
      const body = report(host, end);
      const response = await service.call("/v1/pops/vienna/reports", { method: "POST", token: null, body, headers: { [TIMESTAMP_HEADER]: String(stamp), [SIGNATURE_HEADER]: sign(body, key, stamp) } });
      expect(response.status, await response.clone().text()).toBe(202);
    }

    // host1's report of the next period, signed with a key that is not host1's.
    const forged = report("host1", end + periodMs);
    const before = await forgedCount();
    const flood = autocannon({
      url: `${service.url}/v1/pops/vienna/reports`,
      method: "POST",
      connections: CONNECTIONS,
      amount: FLOOD,
      headers: { "content-type": "application/json", [TIMESTAMP_HEADER]: String(stamp), [SIGNATURE_HEADER]: sign(forged, randomBytes(32).toString("hex"), stamp) },
      body: forged,
    });
    await poll("the flood to be under way", () => forgedCount(), (count) => count - before >= 100, WAIT_TIMEOUT_MS, 5);

    // The period ends while the flood goes on.
    await clock.advanceTo(end + graceMs);
    const decided = await poll("the period's decision", () => view(), (pop) => pop.lastDecision?.periodStart === new Date(end - periodMs).toISOString(), WAIT_TIMEOUT_MS, 5);
    const refusedByThen = (await forgedCount()) - before;
    const result = await flood;

    expect(refusedByThen, "forged reports refused when the period was decided").toBeLessThan(FLOOD);
    expect(decided.lastDecision!.inputs).toMatchObject({ reports: 3, silent: [], unavailable: [] });
    expect(result.non2xx).toBe(FLOOD);
    expect(result["4xx"]).toBe(FLOOD);
    expect((await forgedCount()) - before).toBe(FLOOD);
  }, 120_000);

  it("refuses a report of a period the loop has decided as late (422), and counts it", async () => {
    const end = T0 + 2 * periodMs;
    await clock.asleep(1);
    await clock.advanceTo(end + 1000);
    const stamp = () => Math.floor(clock.now() / 1000);
    const send = (host: keyof typeof KEYS) => {
      const body = report(host, end);
      return service.call("/v1/pops/vienna/reports", { method: "POST", token: null, body, headers: { [TIMESTAMP_HEADER]: String(stamp()), [SIGNATURE_HEADER]: sign(body, KEYS[host], stamp()) } });
    };
    expect((await send("host1")).status).toBe(202);
    expect((await send("host2")).status).toBe(202);
    await clock.advanceTo(end + graceMs);
    const decided = await poll("the period's decision", () => view(), (pop) => pop.lastDecision?.periodStart === new Date(end - periodMs).toISOString(), WAIT_TIMEOUT_MS, 5);
    expect(decided.lastDecision!.inputs).toMatchObject({ silent: ["host3"] });

    const metrics = async () => Number(/^switch_pop_reports_total\{pop="vienna",outcome="late"\} (\d+)$/m.exec(await (await service.call("/metrics", { token: service.tokens.admin })).text())?.[1] ?? 0);
    const lateBefore = await metrics();
    const late = await send("host3");
    expect(late.status).toBe(422);
    expect(((await late.json()) as { detail: string }).detail).toBe(
      `the period ended by ${new Date(end).toISOString()}, when the last period the loop decided ended; a report reaches the service within its period's grace`,
    );
    expect((await metrics()) - lateBefore).toBe(1);
  }, 60_000);
});
