/**
 * The automation service through the offline engine: lifecycles per second (create → ready →
 * stop → stopped over HTTP), the service's own time per lifecycle as a share of the engine's
 * (measured in the same run by timing the engine's calls), API latency p50/p99 under load against
 * /healthz as the baseline, and the heap after 1,000 and after 10,000 lifecycles
 * (BENCH_LIFECYCLES overrides the 10,000).
 */
import autocannon from "autocannon";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import type { Engine } from "../../automation/engine/engine.ts";
import { type TestService, startTestService } from "../support/service.ts";

const CLIENTS = 4;
const TOTAL = Number(process.env.BENCH_LIFECYCLES ?? 10_000);
const FIRST_MARK = Math.min(1_000, TOTAL);
const BODY = JSON.stringify({ participants: [{ lat: 46.05, lon: 14.51 }, { lat: 48.2, lon: 16.37 }], lastN: 5 });

let engineMs = 0;
const timed = (engine: Engine): Engine => {
  const time =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const start = performance.now();
      try {
        return await call(...args);
      } finally {
        engineMs += performance.now() - start;
      }
    };
  return {
    kind: engine.kind,
    up: time(engine.up.bind(engine)),
    destroy: time(engine.destroy.bind(engine)),
    refresh: time(engine.refresh.bind(engine)),
    cancel: engine.cancel.bind(engine),
    outputs: engine.outputs.bind(engine),
    stacks: engine.stacks.bind(engine),
    close: engine.close.bind(engine),
  };
};

async function until(service: TestService, id: string, state: string): Promise<void> {
  for (let attempt = 0; attempt < 6000; attempt++) {
    const conference = (await (await service.call(`/v1/conferences/${id}`)).json()) as { state: string; error?: string };
    if (conference.state === state) {
      return;
    }
    if (conference.state === "failed") {
      throw new Error(`conference ${id} failed: ${conference.error}`);
    }
    await delay(5);
  }
  throw new Error(`conference ${id} never became ${state}`);
}

async function lifecycle(service: TestService): Promise<void> {
  const created = (await (await service.call("/v1/conferences", { method: "POST", body: BODY })).json()) as { id: string };
  await until(service, created.id, "ready");
  await service.call(`/v1/conferences/${created.id}`, { method: "DELETE" });
  await until(service, created.id, "stopped");
}

function heapMiB(): number {
  globalThis.gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

const service = await startTestService({ wrapEngine: timed, env: { SWITCH_CONCURRENCY: "2" } });
try {
  // Warm-up: workers started, modules loaded.
  for (let i = 0; i < 5; i++) {
    await lifecycle(service);
  }

  // The service's own share, one lifecycle at a time so that wall time and engine time line up.
  const SERIAL = 50;
  engineMs = 0;
  const serialStart = performance.now();
  for (let i = 0; i < SERIAL; i++) {
    await lifecycle(service);
  }
  const wallPerLifecycle = (performance.now() - serialStart) / SERIAL;
  const enginePerLifecycle = engineMs / SERIAL;
  console.log(`  one at a time: ${wallPerLifecycle.toFixed(1)} ms per lifecycle, of which the engine ${enginePerLifecycle.toFixed(1)} ms`);
  console.log(`  the service's own time (HTTP, store, queue, polling) as a share of the engine's: ${(((wallPerLifecycle - enginePerLifecycle) / enginePerLifecycle) * 100).toFixed(0)}%`);

  // API latency under load: lifecycles run in the background while autocannon reads and places.
  let loading = true;
  const background = (async () => {
    while (loading) {
      await lifecycle(service);
    }
  })();
  const sample = (await (await service.call("/v1/conferences", { method: "POST", body: BODY })).json()) as { id: string };
  const load = async (title: string, path: string, method: "GET" | "POST" = "GET", body?: string) => {
    const result = await autocannon({
      url: `${service.url}${path}`,
      method,
      connections: 16,
      duration: 5,
      headers: { authorization: `Bearer ${service.tokens.alice}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body }),
    });
    console.log(`  ${title.padEnd(40)} p50 ${String(result.latency.p50).padStart(4)} ms  p99 ${String(result.latency.p99).padStart(4)} ms  ${Math.round(result.requests.average)} req/s  non-2xx ${result.non2xx}`);
    return result.latency.p99;
  };
  const baseline = await load("GET /healthz (baseline)", "/healthz");
  const get = await load("GET /v1/conferences/:id", `/v1/conferences/${sample.id}`);
  const place = await load("POST /v1/placements", "/v1/placements", "POST", BODY);
  console.log(`  p99 against the baseline's: GET ${(get / Math.max(baseline, 1)).toFixed(1)}x, placements ${(place / Math.max(baseline, 1)).toFixed(1)}x`);
  loading = false;
  await background;

  // Throughput and memory over many lifecycles, CLIENTS at a time.
  let started = 0;
  let finished = 0;
  let heapAtMark = 0;
  const throughputStart = performance.now();
  let markTime = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (started < TOTAL) {
        started++;
        await lifecycle(service);
        finished++;
        if (finished === FIRST_MARK) {
          markTime = performance.now();
          heapAtMark = heapMiB();
        }
      }
    }),
  );
  const elapsed = (performance.now() - throughputStart) / 1000;
  const heapAtEnd = heapMiB();
  console.log(`  ${TOTAL} lifecycles, ${CLIENTS} clients: ${(TOTAL / elapsed).toFixed(1)} lifecycles/s (the first ${FIRST_MARK}: ${(FIRST_MARK / ((markTime - throughputStart) / 1000)).toFixed(1)}/s)`);
  console.log(`  heap after ${FIRST_MARK} lifecycles ${heapAtMark.toFixed(1)} MiB, after ${TOTAL} ${heapAtEnd.toFixed(1)} MiB (${(heapAtEnd / heapAtMark).toFixed(2)}x)`);
} finally {
  await service.close();
}
