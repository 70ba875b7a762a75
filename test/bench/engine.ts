/**
 * One conference through the real engine against the same program through the offline engine:
 * the time of `up` and of `destroy` + stack removal by the Pulumi CLI (Automation API, inline
 * program, file backend) on the local cluster, and how many CLI processes each takes, beside the
 * offline engine's evaluation of the program (what `up` would register, nothing created).
 *
 * Needs the toolchain and a cluster, as the e2e tests do: `env_file="$(scripts/setup)" && source
 * "$env_file"`, `npm run cluster -- up`, and SWITCH_E2E_KUBECONFIG (or the local cluster's).
 */
import { PulumiCommand } from "@pulumi/pulumi/automation/index.js";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { conferenceName } from "../../domain/contracts/conference.ts";
import { qualifiedKey } from "../../domain/contracts/project.ts";
import { runConference } from "../support/conference.ts";
import { cluster, hasPulumi } from "../e2e/global-setup.ts";
import { bounded, e2eStack, localTestbedConfig } from "../e2e/support.ts";
import { medianMs, ratio } from "./measure.ts";

const RUNS = 3;

function fail(message: string): never {
  console.error(`engine bench: ${message}`);
  process.exit(1);
}

if (!hasPulumi()) {
  fail('needs a Pulumi CLI on PATH: env_file="$(scripts/setup)" && source "$env_file"');
}
if (process.env.SWITCH_E2E_KUBECONFIG === undefined) {
  const running = cluster("kubeconfig");
  if (!running.ok) {
    fail("needs a cluster: npm run cluster -- up, or SWITCH_E2E_KUBECONFIG");
  }
  process.env.SWITCH_E2E_KUBECONFIG = running.stdout;
}
const real = spawnSync("bash", ["-c", "command -v pulumi"], { encoding: "utf8" }).stdout.trim();

// The CLI through a wrapper that counts its invocations: each is one process the Automation API starts.
const wrapper = mkdtempSync(join(tmpdir(), "switch-vaas-bench-cli-"));
const calls = join(wrapper, "calls.log");
mkdirSync(join(wrapper, "bin"));
writeFileSync(calls, "");
writeFileSync(join(wrapper, "bin", "pulumi"), `#!/bin/sh\necho "$1" >> ${JSON.stringify(calls)}\nexec ${JSON.stringify(real)} "$@"\n`);
chmodSync(join(wrapper, "bin", "pulumi"), 0o755);
const pulumiCommand = await PulumiCommand.get({ root: wrapper });
const counted = async (work: () => Promise<unknown>): Promise<{ ms: number; processes: string[] }> => {
  writeFileSync(calls, "");
  const start = performance.now();
  await work();
  return { ms: performance.now() - start, processes: readFileSync(calls, "utf8").trim().split("\n") };
};

const spec = (id: string) => ({ id, cluster: "local", expectedParticipants: 4, lastN: -1, simulcast: true, resources: { cpu: "1", memory: "2Gi" } });
const testbed = await e2eStack("local", "testbed", localTestbedConfig(), { pulumiCommand });
await testbed.up(bounded());

const ups: number[] = [];
const destroys: number[] = [];
let upProcesses: string[] = [];
let destroyProcesses: string[] = [];
try {
  for (let run = 0; run < RUNS; run++) {
    const id = `bench-${run}`;
    const stack = await e2eStack(conferenceName(id), "conference", {
      [qualifiedKey("conference")]: { value: JSON.stringify(spec(id)) },
      [qualifiedKey("testbedStack")]: { value: "organization/switch-vaas/local" },
    }, { pulumiCommand });
    const up = await counted(() => stack.up(bounded()));
    const destroy = await counted(async () => {
      await stack.destroy(bounded());
      await stack.workspace.removeStack(stack.name);
    });
    ups.push(up.ms);
    destroys.push(destroy.ms);
    upProcesses = up.processes;
    destroyProcesses = destroy.processes;
  }
} finally {
  await testbed.destroy(bounded());
  await testbed.workspace.removeStack(testbed.name);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
// The same conference on the mocks' node-port cluster (test/support/conference.ts): the same objects.
const offline = await medianMs(() => runConference({ ...spec("bench-offline"), cluster: "arnes-ljubljana" }), 10, 2);
console.log(`one conference (nodePort, local cluster), median of ${RUNS}:`);
console.log(`  real engine: up                                 ${median(ups).toFixed(0).padStart(8)} ms   ${upProcesses.length} CLI processes (${upProcesses.join(", ")})`);
console.log(`  real engine: destroy + stack rm                 ${median(destroys).toFixed(0).padStart(8)} ms   ${destroyProcesses.length} CLI processes (${destroyProcesses.join(", ")})`);
console.log(`  offline engine: the same program, evaluated     ${offline.toFixed(0).padStart(8)} ms   0 CLI processes (median of 10)`);
ratio("real up / offline evaluation", median(ups) / offline);
