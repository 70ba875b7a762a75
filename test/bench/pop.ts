/**
 * Requests per second and p99 latency through the loopback PoP (real nginx: load balancer, four
 * edges, mid-cache, origin) for the paper's request mix — 5,000 image, 1,500 large-file and 500
 * stream users, i.e. 50 : 15 : 5 requests — and the share of requests that reach the origin.
 * Baseline in the same run: the same requests straight to the origin. Load from autocannon.
 */
import autocannon from "autocannon";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { LOCAL, startLoopbackPop } from "../support/pop.ts";

const SECONDS = 10;
const CONNECTIONS = 32;

const files: Record<string, Buffer | string> = {};
const mix: string[] = [];
for (let i = 0; i < 50; i++) {
  files[`img/${i}.png`] = randomBytes(8_000 + i * 100);
  mix.push(`/img/${i}.png`);
}
for (let i = 0; i < 15; i++) {
  files[`files/${i}.pdf`] = randomBytes(256 * 1024);
  mix.push(`/files/${i}.pdf`);
}
for (let i = 0; i < 5; i++) {
  files[`vod/show/seg${i}.ts`] = randomBytes(64 * 1024);
  mix.push(`/vod/show/seg${i}.ts`);
}

const pop = await startLoopbackPop(files);
try {
  // Fill the caches once, as a PoP that has been running would be.
  for (const path of mix) {
    await (await fetch(`http://${LOCAL}:${pop.lbPort}${path}`)).arrayBuffer();
  }
  const run = (port: number) =>
    autocannon({ url: `http://${LOCAL}:${port}`, connections: CONNECTIONS, duration: SECONDS, requests: mix.map((path) => ({ method: "GET", path })) });

  const baseline = await run(pop.originPort);
  const originLinesBefore = readFileSync(pop.originLog, "utf8").split("\n").length;
  const through = await run(pop.lbPort);
  const originRequests = readFileSync(pop.originLog, "utf8").split("\n").length - originLinesBefore;

  console.log(`paper's request mix (50 images : 15 large files : 5 VoD segments), ${CONNECTIONS} connections, ${SECONDS} s each, 2 cores shared by everything:`);
  const row = (label: string, result: autocannon.Result) =>
    console.log(`  ${label.padEnd(30)} ${Math.round(result.requests.average).toLocaleString("en").padStart(8)} req/s   p99 ${String(result.latency.p99).padStart(4)} ms   errors ${result.errors + result.non2xx}`);
  row("baseline: straight to origin", baseline);
  row("through the PoP (LB → edge)", through);
  console.log(`  PoP / baseline throughput       ${(through.requests.average / baseline.requests.average).toFixed(2)}x`);
  console.log(`  origin share through the PoP    ${((100 * originRequests) / Math.max(1, through.requests.total)).toFixed(3)}% (${originRequests} of ${through.requests.total.toLocaleString("en")} requests)`);
} finally {
  await pop.stop();
}
