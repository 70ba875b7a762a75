import Database from "better-sqlite3";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Layout, RoleCounts } from "../../domain/wae/index.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, sign } from "../../domain/wae/signature.ts";
import { newToken, tokenEntry } from "../../automation/service/auth.ts";
import { poll } from "../support/poll.ts";
import { type ServiceProcess, startServiceProcess } from "../support/service-process.ts";

/**
 * kill -9 of the service while it re-ups a PoP, then a restart on the same data directory: the
 * PoP converges on the newest decision, with no report lost and no `up` that succeeded twice. The
 * first start brings Vienna up as its stack file says; while that `up` runs, the hosts report a
 * live-heavy mix and an admin asks for a rebalance, which decides a new layout; then the kill.
 */

const VIENNA = join(import.meta.dirname, "..", "..", "stacks", "Pulumi.pop-vienna.yaml");
const KEYS = { host1: "key-of-host1-0123456789abcdef", host2: "key-of-host2-0123456789abcdef", host3: "key-of-host3-0123456789abcdef" };
const LIVE_HEAVY: RoleCounts = { small: 1500, large: 300, vod: 300, live: 1500 };
const CONVERGE_TIMEOUT_MS = 60_000;

const services = new Set<ServiceProcess>();
afterAll(async () => {
  await Promise.all([...services].map((service) => service.kill9()));
});

interface Snapshot {
  decisions: { id: number; outcome: string; strategy: string; layout: string }[];
  operations: { id: number; kind: string; state: string; attempts: number }[];
  reports: number;
}

function snapshot(dataDir: string): Snapshot {
  const db = new Database(join(dataDir, "switch.db"), { readonly: true, fileMustExist: true });
  try {
    return {
      decisions: db.prepare("SELECT id, outcome, strategy, layout FROM pop_decisions WHERE pop = 'vienna' ORDER BY id").all() as Snapshot["decisions"],
      operations: db.prepare("SELECT id, kind, state, attempts FROM operations WHERE stack = 'pop-vienna' ORDER BY id").all() as Snapshot["operations"],
      reports: (db.prepare("SELECT count(*) AS n FROM pop_reports WHERE pop = 'vienna'").get() as { n: number }).n,
    };
  } finally {
    db.close();
  }
}

describe("kill -9 during a PoP's re-up", () => {
  it("converges on the newest decision after a restart, with every report kept and one up succeeded", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switch-pop-crash-"));
    const keysFile = join(dir, "pop-keys.json");
    writeFileSync(keysFile, JSON.stringify({ vienna: KEYS }));
    chmodSync(keysFile, 0o600);
    const token = newToken();
    const dataDir = join(dir, "data");
    const env = {
      SWITCH_ENGINE: "offline",
      SWITCH_DATA_DIR: dataDir,
      SWITCH_API_TOKENS: tokenEntry("ops", "admin", token),
      SWITCH_POPS: VIENNA,
      SWITCH_POP_KEYS_FILE: keysFile,
      HOST: "127.0.0.1",
      PORT: "0",
      SWITCH_LOG_LEVEL: "warn",
    };
    let passed = false;
    try {
      const first = await startServiceProcess({ env });
      services.add(first);
      // Each host's report of the ten minutes that just ended, signed as its instance manager signs.
      const now = Math.floor(Date.now() / 1000);
      for (const [host, key] of Object.entries(KEYS)) {
        const body = JSON.stringify({
          pop: "vienna",
          host,
          periodStart: new Date((now - 605) * 1000).toISOString(),
          periodEnd: new Date((now - 5) * 1000).toISOString(),
          cpu: { capacityCores: 8, usedCores: 2 },
          network: { linkMbps: 1000, txMbps: 100 },
          requests: LIVE_HEAVY,
        });
        const response = await fetch(`${first.url}/v1/pops/vienna/reports`, {
          method: "POST",
          headers: { "content-type": "application/json", [TIMESTAMP_HEADER]: String(now), [SIGNATURE_HEADER]: sign(body, key, now) },
          body,
        });
        expect(response.status, await response.clone().text()).toBe(202);
      }
      const rebalance = await fetch(`${first.url}/v1/pops/vienna/rebalance`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
      expect(rebalance.status, await rebalance.clone().text()).toBe(202);
      const newest = ((await rebalance.json()) as { id: number; outcome: string }).id;
      await first.kill9();
      services.delete(first);

      const atKill = snapshot(dataDir);
      expect(atKill.reports).toBe(3);
      expect(atKill.decisions.map((decision) => [decision.strategy, decision.outcome])).toEqual([
        ["configured", "applying"],
        ["exact", "applying"],
      ]);
      // What makes this a kill during a re-up: no `up` of the PoP had ended.
      expect(atKill.operations.every((operation) => operation.state === "queued" || operation.state === "running"), JSON.stringify(atKill.operations)).toBe(true);

      const second = await startServiceProcess({ env });
      services.add(second);
      const settled = await poll(
        "the PoP to converge after the restart",
        () => Promise.resolve(snapshot(dataDir)),
        (seen) => seen.operations.every((operation) => operation.state !== "queued" && operation.state !== "running") && seen.decisions.some((decision) => decision.id === newest && decision.outcome === "applied"),
        CONVERGE_TIMEOUT_MS,
      );
      expect(await second.stop()).toBe(0);
      services.delete(second);

      expect(settled.reports).toBe(3);
      expect(settled.decisions.map((decision) => decision.outcome)).toEqual(["superseded", "applied"]);
      expect(settled.operations.filter((operation) => operation.kind === "up" && operation.state === "succeeded")).toHaveLength(1);
      expect(settled.operations.every((operation) => operation.state === "succeeded" || operation.state === "cancelled"), JSON.stringify(settled.operations)).toBe(true);

      // The stack's recorded state is the newest decision's layout: one container per edge, at its address.
      const decided = JSON.parse(settled.decisions.at(-1)!.layout) as { layout: Layout; addresses: Record<string, string> };
      const state = JSON.parse(readFileSync(join(dataDir, "offline", "pop-vienna.json"), "utf8")) as { resources: { type: string; name: string; inputs: Record<string, unknown> }[] };
      const edgeContainers = state.resources
        .filter((resource) => resource.type === "docker:index/container:Container" && /-(small|large|vod|live)$/.test(resource.name))
        .map((resource) => resource.name)
        .sort();
      expect(edgeContainers).toEqual(Object.entries(decided.layout).flatMap(([host, roles]) => roles.map((role) => `pop-${host}-${role}`)).sort());
      expect(Object.values(decided.layout).some((roles) => roles.includes("live"))).toBe(true);
      passed = true;
    } finally {
      if (passed) {
        rmSync(dir, { recursive: true, force: true });
      } else {
        console.log(`the data directory is kept at ${dataDir}`);
      }
    }
  }, 180_000);
});
