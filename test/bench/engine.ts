/**
 * One conference through the real engine, today's path beside the path before it, in one run: the
 * time of `up` and of `destroy` (with the stack's removal) by the Pulumi CLI on the local cluster,
 * and the CLI processes each takes, beside the offline engine's evaluation of the same program.
 *
 * - before: what the local engine did until issue 16, replayed through the Automation API — `stack
 *   select`/`init`, `config set-all`, a `pulumi preview` to count the steps, `up` (which the SDK
 *   follows with `stack output` twice and `stack history`), `stack export` for the outputs; for a
 *   destroy `stack select`, `config`, `stack export`, `destroy` (and `stack history`), `stack rm` —
 *   on the conference program as it was (the provider's awaits of the Service and of the
 *   namespace's deletion; every object deleted before its namespace), restored by a resource
 *   transform.
 * - now: the LocalEngine (automation/engine/local.ts) as the service runs it; and the service
 *   itself over HTTP, from a create's 202 to `ready` and from a stop's 202 to `stopped`.
 *
 * Needs the toolchain and a cluster, as the e2e tests do: `env_file="$(scripts/setup)" && source
 * "$env_file"`, `npm run cluster -- up`, and SWITCH_E2E_KUBECONFIG (or the local cluster's).
 */
import "../../runtime/node-version.ts"; // first: refuses an unsupported Node before any other module runs
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation/index.js";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { LocalEngine } from "../../automation/engine/local.ts";
import { conferenceName } from "../../domain/contracts/conference.ts";
import { qualifiedKey } from "../../domain/contracts/project.ts";
import stackProgram from "../../stacks/index.ts";
import { runConference } from "../support/conference.ts";
import { cluster, hasPulumi } from "../e2e/global-setup.ts";
import { OPERATION_TIMEOUT_MS, bounded, e2eStack, e2eWorld, localTestbedConfig } from "../e2e/support.ts";
import { startTestService } from "../support/service.ts";
import { medianMs, ratio } from "./measure.ts";

/** Each path's operations, interleaved so that both see the same machine. */
const RUNS = 5;
const TESTBED = "local";

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

// The CLI through a wrapper that logs each invocation's command: each is one process started.
const wrapper = mkdtempSync(join(tmpdir(), "switch-vaas-bench-cli-"));
const calls = join(wrapper, "calls.log");
mkdirSync(join(wrapper, "bin"));
writeFileSync(calls, "");
writeFileSync(join(wrapper, "bin", "pulumi"), `#!/bin/sh\necho "$1" >> ${JSON.stringify(calls)}\nexec ${JSON.stringify(real)} "$@"\n`);
chmodSync(join(wrapper, "bin", "pulumi"), 0o755);
// The engine finds its CLI on PATH, as the service's does.
process.env.PATH = `${join(wrapper, "bin")}:${process.env.PATH ?? ""}`;
const pulumiCommand = await PulumiCommand.get({ root: wrapper });

interface Measured {
  ms: number;
  processes: string[];
}
async function counted(work: () => Promise<unknown>): Promise<Measured> {
  writeFileSync(calls, "");
  const start = performance.now();
  await work();
  return { ms: performance.now() - start, processes: readFileSync(calls, "utf8").trim().split("\n") };
}

const spec = (id: string) => ({ id, cluster: TESTBED, expectedParticipants: 4, lastN: -1, simulcast: true, resources: { cpu: "1", memory: "2Gi" } });
const conferenceConfig = (id: string) => ({
  [qualifiedKey("program")]: { value: "conference", secret: false },
  [qualifiedKey("conference")]: { value: JSON.stringify(spec(id)), secret: false },
  [qualifiedKey("testbedStack")]: { value: `organization/switch-vaas/${TESTBED}`, secret: false },
});

/**
 * The conference program as it was: every object awaited by the provider (the Service's endpoints,
 * the namespace's deletion), nothing deleted with its namespace.
 */
const programBefore: pulumi.ResourceTransform = (args) => {
  const props = args.props as { metadata?: { annotations?: Record<string, string> } };
  const annotations = Object.fromEntries(Object.entries(props.metadata?.annotations ?? {}).filter(([key]) => key !== "pulumi.com/skipAwait"));
  return {
    props: args.type.startsWith("kubernetes:") && props.metadata !== undefined ? { ...props, metadata: { ...props.metadata, annotations } } : props,
    opts: { ...args.opts, deletedWith: undefined },
  };
};

const { backendUrl, envVars } = e2eWorld();
// The service's engine, in this process, takes the passphrase from the environment, as it would from its own.
process.env.PULUMI_CONFIG_PASSPHRASE = envVars.PULUMI_CONFIG_PASSPHRASE;
function workspaceOf(stackName: string) {
  return {
    args: {
      stackName,
      projectName: "switch-vaas",
      program: () => {
        pulumi.runtime.registerResourceTransform(programBefore);
        return stackProgram();
      },
    },
    options: { projectSettings: { name: "switch-vaas", runtime: "nodejs" as const, backend: { url: backendUrl } }, secretsProvider: "passphrase", envVars, pulumiCommand },
  };
}

async function upBefore(id: string): Promise<void> {
  const { args, options } = workspaceOf(conferenceName(id));
  const stack = await LocalWorkspace.createOrSelectStack(args, options);
  await stack.setAllConfig(conferenceConfig(id));
  await stack.preview({ color: "never", onEvent: () => undefined, ...bounded() });
  await stack.up({ color: "never", onEvent: () => undefined, ...bounded() });
  await stack.exportStack();
}

async function destroyBefore(id: string): Promise<void> {
  const { args, options } = workspaceOf(conferenceName(id));
  const stack: Stack = await LocalWorkspace.selectStack(args, options);
  await stack.getAllConfig();
  await stack.exportStack();
  await stack.destroy({ color: "never", onEvent: () => undefined, ...bounded() });
  await stack.workspace.removeStack(stack.name);
}

const testbed = await e2eStack(TESTBED, "testbed", localTestbedConfig(), { pulumiCommand, adjust: [] });
await testbed.up(bounded());
const engine = await LocalEngine.create({ dataDir: mkdtempSync(join(tmpdir(), "switch-vaas-bench-engine-")), backendUrl, passphrase: envVars.PULUMI_CONFIG_PASSPHRASE! });
// As the service does at start: the registry reads the testbed, and the engine keeps its outputs for plans.
await engine.outputs(TESTBED);

const before = { up: [] as Measured[], destroy: [] as Measured[] };
const now = { up: [] as Measured[], destroy: [] as Measured[] };
/** Through the service over HTTP, as an organizer sees it: from the create's 202 to `ready`, from the stop's 202 to `stopped`. */
const organizer = { ready: [] as Measured[], stopped: [] as Measured[] };
try {
  for (let run = 0; run < RUNS; run++) {
    before.up.push(await counted(() => upBefore(`bench-before-${run}`)));
    before.destroy.push(await counted(() => destroyBefore(`bench-before-${run}`)));
    const stack = conferenceName(`bench-now-${run}`);
    now.up.push(await counted(() => engine.up({ stack, config: conferenceConfig(`bench-now-${run}`) }, { signal: bounded().signal })));
    now.destroy.push(await counted(() => engine.destroy(stack, { signal: bounded().signal })));
  }
  const service = await startTestService({
    env: { SWITCH_ENGINE: "local", SWITCH_TESTBED: TESTBED, SWITCH_BACKEND_URL: backendUrl },
  });
  try {
    for (let run = 0; run < RUNS; run++) {
      let id = "";
      organizer.ready.push(
        await counted(async () => {
          id = (await service.create({ participants: [{ lat: 46.05, lon: 14.51 }], expectedParticipants: 4 })).id;
          await service.waitForConference(id, ["ready"], OPERATION_TIMEOUT_MS);
        }),
      );
      organizer.stopped.push(
        await counted(async () => {
          await service.stop(id);
          await service.waitForConference(id, ["stopped"], OPERATION_TIMEOUT_MS);
        }),
      );
    }
  } finally {
    await service.close();
  }
} finally {
  await engine.close();
  await testbed.destroy(bounded());
  await testbed.workspace.removeStack(testbed.name);
}

const median = (values: Measured[]) => [...values].sort((a, b) => a.ms - b.ms)[Math.floor(values.length / 2)]!;
const line = (label: string, measured: Measured) =>
  console.log(`  ${label.padEnd(34)} ${measured.ms.toFixed(0).padStart(8)} ms   ${measured.processes.length} CLI processes (${measured.processes.join(", ")})`);
// The same conference on the mocks' node-port cluster (test/support/conference.ts): the same objects.
const offline = await medianMs(() => runConference({ ...spec("bench-offline"), cluster: "arnes-ljubljana" }), 10, 2);
console.log(`one conference (nodePort, local cluster), median of ${RUNS} each, interleaved:`);
line("before: up", median(before.up));
line("now:    up", median(now.up));
line("before: destroy + stack rm", median(before.destroy));
line("now:    destroy + stack rm", median(now.destroy));
console.log(`  offline engine: the same program, evaluated ${offline.toFixed(0).padStart(8)} ms   0 CLI processes (median of 10)`);
line("service: create to ready", median(organizer.ready));
line("service: stop to stopped", median(organizer.stopped));
ratio("up: before / now", median(before.up).ms / median(now.up).ms);
ratio("destroy: before / now", median(before.destroy).ms / median(now.destroy).ms);
