/**
 * The local cluster of the e2e tests: a real control plane (etcd, kube-apiserver with its default
 * admission plugins, kube-controller-manager, kube-scheduler) whose nodes and pods kwok simulates,
 * run as local processes by kwokctl's binary runtime. Its nodes are sized like the site of the
 * `local` stack (stacks/Pulumi.local.yaml). Every binary comes from scripts/setup's toolchain:
 *
 *   env_file="$(scripts/setup)" && source "$env_file"
 *   npx tsx scripts/cluster.ts up          # create or restart it, wait until it is ready
 *   npx tsx scripts/cluster.ts kubeconfig  # print the path of its kubeconfig
 *   npx tsx scripts/cluster.ts down        # delete it
 *
 * `up` and `kubeconfig` print the kubeconfig's path on stdout; progress goes to stderr.
 */
import "../runtime/node-version.ts"; // first: refuses an unsupported Node before any other module runs
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { alternatives, exitWithUsageError, parseCommandLine } from "../automation/cli/command-line.ts";

const CLUSTER_NAME = "switch-vaas";
const LOCAL_STACK = fileURLToPath(new URL("../stacks/Pulumi.local.yaml", import.meta.url));
const LOCAL_SITE = "local";
const SITES_KEY = "switch-vaas:sites";
/** How long `up` waits for each of: the control plane to start, /readyz, the nodes to be Ready. */
const READY_TIMEOUT_SECONDS = 120;
/** Where `up` and `kubeconfig` write the kubeconfig: state that outlives a shell, not a cache. An
 * empty XDG_STATE_HOME counts as unset, as the XDG base directory spec says. */
const STATE_DIR = join(process.env.XDG_STATE_HOME || join(homedir(), ".local", "state"), "switch-vaas");
const KUBECONFIG_PATH = join(STATE_DIR, `${CLUSTER_NAME}.kubeconfig`);

/** The kwokctl configuration given on stdin: every component listens on loopback only (kwok's
 * default is 0.0.0.0), and the API server advertises loopback too, so that it also starts where
 * there is no default route (a network namespace with loopback alone, which is how the tests are
 * shown to need nothing from outside the machine). */
const KWOKCTL_CONFIG = `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
componentsPatches:
  - name: kube-apiserver
    extraArgs:
      - key: advertise-address
        value: 127.0.0.1
`;

class ClusterError extends Error {}

interface Toolchain {
  bin: string;
  kubernetesVersion: string;
  etcdVersion: string;
}

interface NodeSize {
  nodes: number;
  vcpuPerNode: number;
  memoryGiBPerNode: number;
}

/** The toolchain of scripts/setup, as its env file names it, with the versions it was built from. */
async function loadToolchain(): Promise<Toolchain> {
  const dir = process.env.SWITCH_TOOLCHAIN;
  const setupHint = 'run env_file="$(scripts/setup)" && source "$env_file" first';
  if (!dir) throw new ClusterError(`SWITCH_TOOLCHAIN is not set: ${setupHint}`);
  const bin = join(dir, "bin");
  const binaries = ["kwokctl", "kwok", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"];
  const missing = binaries.filter((name) => !existsSync(join(bin, name)));
  if (missing.length > 0) throw new ClusterError(`${bin} lacks ${missing.join(", ")}: ${setupHint}`);

  const pins = new Map<string, string>();
  for (const line of (await readFile(join(dir, "versions.env"), "utf8")).split("\n")) {
    const match = /^([A-Z_]+)=(\S+)$/.exec(line);
    if (match) pins.set(match[1]!, match[2]!);
  }
  const pin = (key: string): string => {
    const value = pins.get(key);
    if (!value) throw new ClusterError(`${join(dir, "versions.env")} has no ${key}: ${setupHint}`);
    return value;
  };
  return { bin, kubernetesVersion: pin("KUBERNETES_VERSION"), etcdVersion: pin("ETCD_VERSION") };
}

/** The size of the `local` site's nodes, read from its stack file, so that the simulated cluster
 * offers what the stack plans for. */
async function loadNodeSize(): Promise<NodeSize> {
  const stack = parse(await readFile(LOCAL_STACK, "utf8")) as { config?: Record<string, unknown> } | null;
  const sites = stack?.config?.[SITES_KEY];
  const site = Array.isArray(sites)
    ? (sites as unknown[]).find((s): s is Record<string, unknown> => (s as { name?: unknown } | null)?.name === LOCAL_SITE)
    : undefined;
  if (!site) throw new ClusterError(`${LOCAL_STACK}: ${SITES_KEY} has no site named "${LOCAL_SITE}"`);
  const positiveInteger = (field: keyof NodeSize): number => {
    const value = site[field];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw new ClusterError(`${LOCAL_STACK}: ${SITES_KEY}[name=${LOCAL_SITE}].${field} must be a positive integer`);
    }
    return value;
  };
  return {
    nodes: positiveInteger("nodes"),
    vcpuPerNode: positiveInteger("vcpuPerNode"),
    memoryGiBPerNode: positiveInteger("memoryGiBPerNode"),
  };
}

/** Runs a binary of the toolchain with arguments (and stdin); resolves to its stdout. */
type Tool = (args: string[], input?: string) => Promise<string>;

function run(command: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new ClusterError(`${command} ${args.join(" ")} failed: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
    child.stdin?.end(input ?? "");
  });
}

/** kwokctl's binary runtime, pointed at the toolchain's binaries and their versions (it picks
 * flags by version), so that it downloads nothing. */
function kwokctlEnv(toolchain: Toolchain): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KWOK_RUNTIME: "binary",
    KWOK_KUBE_VERSION: `v${toolchain.kubernetesVersion}`,
    KWOK_KUBE_BINARY_PREFIX: toolchain.bin,
    KWOK_KUBECTL_BINARY: join(toolchain.bin, "kubectl"),
    KWOK_ETCD_VERSION: toolchain.etcdVersion,
    KWOK_ETCD_BINARY: join(toolchain.bin, "etcd"),
    KWOK_CONTROLLER_BINARY: join(toolchain.bin, "kwok"),
  };
}

async function clusterExists(kwokctl: Tool): Promise<boolean> {
  return (await kwokctl(["get", "clusters"])).split("\n").includes(CLUSTER_NAME);
}

async function writeKubeconfig(kwokctl: Tool): Promise<string> {
  await mkdir(STATE_DIR, { recursive: true });
  await writeFile(KUBECONFIG_PATH, await kwokctl(["get", "kubeconfig", "--name", CLUSTER_NAME]), { mode: 0o600 });
  return KUBECONFIG_PATH;
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_SECONDS * 1000;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new ClusterError(`${what} did not happen within ${READY_TIMEOUT_SECONDS}s`);
    await sleep(1000);
  }
}

async function up(toolchain: Toolchain, kwokctl: Tool): Promise<string> {
  const size = await loadNodeSize();

  if (await clusterExists(kwokctl)) {
    console.error(`cluster ${CLUSTER_NAME} exists: starting whatever of it is stopped`);
    await kwokctl(["start", "cluster", "--name", CLUSTER_NAME]);
  } else {
    console.error(`creating cluster ${CLUSTER_NAME} (Kubernetes ${toolchain.kubernetesVersion}, kwok binary runtime)…`);
    await kwokctl(
      ["--config", "-", "create", "cluster", "--name", CLUSTER_NAME, "--timeout", `${READY_TIMEOUT_SECONDS}s`],
      KWOKCTL_CONFIG,
    );
  }
  const kubeconfig = await writeKubeconfig(kwokctl);
  const kubectl = (...args: string[]) =>
    run(join(toolchain.bin, "kubectl"), ["--kubeconfig", kubeconfig, ...args], process.env);

  await waitFor("the API server answering /readyz", async () => (await kubectl("get", "--raw", "/readyz")).trim() === "ok");
  const { gitVersion } = JSON.parse(await kubectl("get", "--raw", "/version")) as { gitVersion: string };
  if (gitVersion !== `v${toolchain.kubernetesVersion}`) {
    throw new ClusterError(
      `cluster ${CLUSTER_NAME} runs Kubernetes ${gitVersion}, the toolchain ${toolchain.kubernetesVersion}: ` +
        "it was made by another toolchain; run `npx tsx scripts/cluster.ts down` and `up` again",
    );
  }

  // kwokctl scales by count and leaves existing nodes as they are, so nodes of another size (the
  // stack file changed) are removed first.
  const cpu = String(size.vcpuPerNode);
  const memory = `${size.memoryGiBPerNode}Gi`;
  const nodes = JSON.parse(await kubectl("get", "nodes", "-o", "json")) as {
    items: { status?: { capacity?: Record<string, string> } }[];
  };
  const scale = (replicas: number) =>
    kwokctl([
      "scale", "node", "--name", CLUSTER_NAME, "--replicas", String(replicas),
      "--param", `.allocatable.cpu = "${cpu}"`, "--param", `.allocatable.memory = "${memory}"`,
    ]);
  if (nodes.items.some((node) => node.status?.capacity?.cpu !== cpu || node.status?.capacity?.memory !== memory)) {
    await scale(0);
  }
  await scale(size.nodes);
  console.error(`waiting for ${size.nodes} node(s) of ${cpu} vCPU and ${memory} to be Ready…`);
  await waitFor(`${size.nodes} node(s) Ready`, async () => {
    const ready = await kubectl(
      "get", "nodes", "-o", 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
    );
    return ready.split("\n").filter((status) => status === "True").length === size.nodes;
  });
  console.error(`cluster ${CLUSTER_NAME} is ready (Kubernetes ${gitVersion})`);
  return kubeconfig;
}

const COMMANDS = ["up", "down", "kubeconfig"] as const;
type Command = (typeof COMMANDS)[number];
const isCommand = (value: string | undefined): value is Command => COMMANDS.some((known) => known === value);

const COMMAND_LINE = {
  name: "cluster",
  usage: `usage: npm run cluster -- ${COMMANDS.join("|")}
  up          create the cluster, or start whatever of it is stopped, and wait until it is ready
  down        delete it
  kubeconfig  write its kubeconfig
up and kubeconfig print the kubeconfig's path on stdout. The binaries come from scripts/setup:
env_file="$(scripts/setup)" && source "$env_file"`,
  options: {},
};

/** The one command of the command line. */
function commandOf(positionals: string[]): Command {
  const [command, ...more] = positionals;
  if (more.length > 0) {
    exitWithUsageError(COMMAND_LINE, [`give one command, not ${positionals.length} (${positionals.join(", ")})`]);
  }
  if (!isCommand(command)) {
    exitWithUsageError(COMMAND_LINE, [command === undefined ? `give a command: ${alternatives(COMMANDS)}` : `${JSON.stringify(command)} is not a command; use ${alternatives(COMMANDS)}`]);
  }
  return command;
}

async function main(command: Command): Promise<void> {
  const toolchain = await loadToolchain();
  const kwokctl: Tool = (args, input) => run(join(toolchain.bin, "kwokctl"), args, kwokctlEnv(toolchain), input);
  switch (command) {
    case "up":
      console.log(await up(toolchain, kwokctl));
      return;
    case "kubeconfig":
      if (!(await clusterExists(kwokctl))) throw new ClusterError(`cluster ${CLUSTER_NAME} does not exist: run up first`);
      console.log(await writeKubeconfig(kwokctl));
      return;
    case "down":
      if (await clusterExists(kwokctl)) await kwokctl(["delete", "cluster", "--name", CLUSTER_NAME]);
      await rm(KUBECONFIG_PATH, { force: true });
      console.error(`cluster ${CLUSTER_NAME} is gone`);
      return;
  }
}

try {
  await main(commandOf(parseCommandLine(COMMAND_LINE).positionals));
} catch (error) {
  console.error(error instanceof ClusterError ? `cluster: ${error.message}` : error);
  process.exitCode = 1;
}
