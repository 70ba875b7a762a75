import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { RecordingMocks } from "../../automation/engine/offline.ts";
import { readStackConfig } from "../../automation/engine/stack-config.ts";
import { parsePopSpec, parseReportKeys } from "../../domain/contracts/cdn-pop.ts";
import { parseConferenceSpec, parseTlsConfig } from "../../domain/contracts/conference.ts";
import { type ProgramName } from "../../domain/contracts/project.ts";
import { parseKubeconfigs, parseSites } from "../../domain/contracts/testbed.ts";
import { parseCandidateClusters, parsePlacementRequest } from "../../domain/decision/index.ts";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { parseLayoutInput } from "../../domain/wae/layout.ts";
import { parseReport } from "../../domain/wae/reports.ts";
import { type CommandResult, runCli, runScript } from "../support/cli.ts";
import { conferenceMocks } from "../support/conference.ts";
import { runStack } from "../support/pulumi.ts";

/**
 * What bad input gets, tried as a new user would (issue 9, item 6): every malformed config and
 * command line below is refused with one line per problem naming the key or flag and the fix,
 * a non-zero exit for commands, no stack trace, none of zod's own texts, and none of the secrets
 * planted in the inputs.
 */

const TOKEN = "tok-SECRET-1234567890";
const REPORT_KEY = "key-SECRET-0987654321";
const SHORT_REPORT_KEY = "key-SECRET-1";
const PEM_KEY = "-----BEGIN PRIVATE KEY-----\npem-SECRET-5555555555\n-----END PRIVATE KEY-----\n";
const SECRETS = [TOKEN, REPORT_KEY, SHORT_REPORT_KEY, "pem-SECRET-5555555555", "SECRET"];

/** zod's default texts, which say neither what is wanted nor how to fix it. */
const ZOD_DEFAULT_TEXT = /\bInvalid (input|option|string|number|URL|ISO|key|value|element|email)|\bToo (small|big)\b|Unrecognized key|expected [a-z]+, received/;

/** What every refusal must be: no trace, no zod default, no secret. */
function expectClean(text: string): void {
  expect(text).not.toMatch(/^\s+at /m);
  expect(text).not.toMatch(ZOD_DEFAULT_TEXT);
  for (const secret of SECRETS) {
    expect(text).not.toContain(secret);
  }
}

function kubeconfig(user: Record<string, unknown> = { token: TOKEN }, server = "https://192.0.2.1:6443"): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server } }],
    contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
    users: [{ name: "u", user }],
    "current-context": "c",
  });
}
/** A kubeconfig whose token line is indented with a tab, which YAML does not allow. */
const BROKEN_KUBECONFIG = `apiVersion: v1\nusers:\n- name: u\n  user:\n\ttoken: ${TOKEN}\n`;

const location = { city: "Ljubljana", country: "SI", lat: 46.0569, lon: 14.5058 };
const gke = { name: "gcp-europe-west1", provider: "gke", region: "europe-west1", zone: "europe-west1-b", location };
const local = { name: "local", provider: "kubeconfig", location, nodes: 1, vcpuPerNode: 4, memoryGiBPerNode: 8 };
const conference = { id: "physics-101", cluster: "gcp-europe-west1", expectedParticipants: 20, lastN: 5, simulcast: true, resources: { cpu: "2", memory: "3Gi" } };
const tls = { domain: "conf.example.org", certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", key: PEM_KEY };

const stacks = join(import.meta.dirname, "..", "..", "stacks");
const vienna = JSON.parse(readStackConfig(join(stacks, "Pulumi.pop-vienna.yaml")).config["switch-vaas:pop"]!) as { hosts: Record<string, unknown>[]; [key: string]: unknown };
const hosts = vienna.hosts;
const viennaKeys = { host1: REPORT_KEY, host2: REPORT_KEY, host3: REPORT_KEY };
const withHost1 = (change: Record<string, unknown>) => ({ ...vienna, hosts: [{ ...hosts[0], ...change }, ...hosts.slice(1)] });

interface StackRow {
  program: ProgramName;
  /** By the contract's short key names; strings are set as they are, anything else as JSON. */
  config: Record<string, unknown>;
  secretKeys: string[];
  problems: string[];
}

const testbed = (config: Record<string, unknown>, problems: string[]): StackRow => ({
  program: "testbed",
  config: { sites: [local], kubeconfigs: { local: kubeconfig() }, ...config },
  secretKeys: ["kubeconfigs"],
  problems,
});
const conf = (config: Record<string, unknown>, problems: string[]): StackRow => ({ program: "conference", config: { conference, ...config }, secretKeys: ["tls"], problems });
const pop = (config: Record<string, unknown>, problems: string[]): StackRow => ({ program: "cdn-pop", config: { pop: vienna, reportKeys: viennaKeys, ...config }, secretKeys: ["reportKeys"], problems });

const STACK_ROWS: [string, StackRow][] = [
  // Shapes: a scalar or a map where a list or a map belongs.
  ["sites as a single name", testbed({ sites: "gcp-europe-west1" }, ["switch-vaas:sites must be a list of sites"])],
  ["sites as one site, not a list", testbed({ sites: local }, ["switch-vaas:sites must be a list of sites"])],
  ["a site that is not a map", testbed({ sites: [null] }, ["switch-vaas:sites[0] must be a map; give a site { name, provider, location, ... }"])],
  ["a location as text", testbed({ sites: [{ ...local, location: "Ljubljana" }] }, ["switch-vaas:sites[0].location must be a map; give { city, country, lat, lon }"])],
  ["media source ranges as one range", testbed({ sites: [{ ...gke, mediaSourceRanges: "0.0.0.0/0" }], kubeconfigs: {} }, ['switch-vaas:sites[0].mediaSourceRanges must be a list; give CIDR ranges, e.g. ["0.0.0.0/0"]'])],
  // Types: a value of the wrong type is not "required".
  ["a node count as text", testbed({ sites: [{ ...local, nodes: "2" }] }, ["switch-vaas:sites[0].nodes must be a number; give the number of nodes, e.g. 2"])],
  ["a latitude as text", testbed({ sites: [{ ...local, location: { ...location, lat: "46.05" } }] }, ["switch-vaas:sites[0].location.lat must be a number; give the latitude (degrees north) in decimal degrees"])],
  ["a region as a number", testbed({ sites: [{ ...gke, region: 1 }], kubeconfigs: {} }, ['switch-vaas:sites[0].region must be a string; set the GCP region, e.g. "us-west1"'])],
  ["logging as yes", testbed({ sites: [{ ...gke, logging: "yes" }], kubeconfigs: {} }, ["switch-vaas:sites[0].logging must be true or false; true to send the cluster's logs to Cloud Logging"])],
  ["an unknown disk type", testbed({ sites: [{ ...gke, diskType: "ssd" }], kubeconfigs: {} }, ['switch-vaas:sites[0].diskType must be one of "pd-standard", "pd-balanced", "pd-ssd"'])],
  ["an empty city", testbed({ sites: [{ ...local, location: { ...location, city: "" } }] }, ["switch-vaas:sites[0].location.city is empty; give the city the cluster is in"])],
  ["an empty context", testbed({ sites: [{ ...local, context: "" }] }, ["switch-vaas:sites[0].context is empty; name a context of the kubeconfig, or leave it out for its current-context"])],
  // Ranges: nonsense is refused.
  ["an invalid CIDR", testbed({ sites: [{ ...gke, mediaSourceRanges: ["10.0.0.0/33", "192.0.2/24"] }], kubeconfigs: {} }, [
    'switch-vaas:sites[0].mediaSourceRanges[0] "10.0.0.0/33" is not a CIDR range; give e.g. "203.0.113.0/24", or "0.0.0.0/0" for anywhere',
    'switch-vaas:sites[0].mediaSourceRanges[1] "192.0.2/24" is not a CIDR range; give e.g. "203.0.113.0/24", or "0.0.0.0/0" for anywhere',
  ])],
  ["5,000 nodes", testbed({ sites: [{ ...local, nodes: 5000 }] }, ["switch-vaas:sites[0].nodes 5000 is more than 1000; give the number of nodes of this cluster, at most 1000"])],
  ["4,000 vCPUs per node (millicores)", testbed({ sites: [{ ...local, vcpuPerNode: 4000 }] }, ["switch-vaas:sites[0].vcpuPerNode 4000 is more than 512; give the vCPU count of one node (not millicores)"])],
  ["32,768 GiB per node (MiB)", testbed({ sites: [{ ...local, memoryGiBPerNode: 32768 }] }, ["switch-vaas:sites[0].memoryGiBPerNode 32768 is more than 24576; give the memory in GiB of one node (not MiB)"])],
  ["a 100 TB boot disk", testbed({ sites: [{ ...gke, diskSizeGb: 100000 }], kubeconfigs: {} }, ["switch-vaas:sites[0].diskSizeGb 100000 is more than 65536; a persistent disk holds at most 65536 GB"])],
  // Secrets in the wrong form: named, never quoted.
  [
    "kubeconfigs set as one secret without --path",
    testbed({ kubeconfigs: kubeconfig() }, [
      `switch-vaas:kubeconfigs must be a map from site name to kubeconfig; set each site's: pulumi config set --secret --path 'kubeconfigs.<site>' "$(cat kubeconfig.yaml)"`,
    ]),
  ],
  [
    "kubeconfigs as a bare token",
    testbed({ kubeconfigs: TOKEN }, [
      `switch-vaas:kubeconfigs must be a map from site name to kubeconfig; set each site's: pulumi config set --secret --path 'kubeconfigs.<site>' "$(cat kubeconfig.yaml)"`,
    ]),
  ],
  [
    "a kubeconfig written as a YAML map",
    testbed({ kubeconfigs: { local: { apiVersion: "v1", users: [{ name: "u", user: { token: TOKEN } }] } } }, [
      `switch-vaas:kubeconfigs.local must be a string; give the kubeconfig file's contents as text: pulumi config set --secret --path 'kubeconfigs.<site>' "$(cat kubeconfig.yaml)"`,
    ]),
  ],
  ["a kubeconfig that is not YAML", testbed({ kubeconfigs: { local: BROKEN_KUBECONFIG } }, ["switch-vaas:kubeconfigs.local is not YAML (TAB_AS_INDENT at line 5, column 1); give the kubeconfig file's contents"])],
  ["a kubeconfig that is a list", testbed({ kubeconfigs: { local: `- token: ${TOKEN}\n` } }, ["switch-vaas:kubeconfigs.local is not a kubeconfig; give the kubeconfig file's contents, a YAML map with clusters, contexts and users"])],
  [
    "a kubeconfig whose contexts are a map",
    testbed({ kubeconfigs: { local: `current-context: c\ncontexts: { c: { cluster: c } }\nusers: [{ name: u, user: { token: ${TOKEN} } }]\n` } }, [
      'switch-vaas:kubeconfigs.local: the kubeconfig has no server for context "c"; give a kubeconfig whose context names a cluster with a server URL',
    ]),
  ],
  [
    "a kubeconfig for a site that does not exist",
    testbed({ kubeconfigs: { local: kubeconfig(), ghost: kubeconfig() } }, ['switch-vaas:kubeconfigs.ghost names no kubeconfig site; remove it or add a kubeconfig site called "ghost"']),
  ],
  // The conference stack.
  ["a conference as its id alone", conf({ conference: "physics-101" }, ["switch-vaas:conference must be a map; give { id, cluster, expectedParticipants, lastN, simulcast, resources }"])],
  ["participants as text", conf({ conference: { ...conference, expectedParticipants: "20" } }, ["switch-vaas:conference.expectedParticipants must be a number; give the number of participants the conference is sized for"])],
  ["last-N as text", conf({ conference: { ...conference, lastN: "5" } }, ["switch-vaas:conference.lastN must be a number; give the last-N value (-1 for unlimited)"])],
  ["CPU as a number", conf({ conference: { ...conference, resources: { cpu: 2, memory: "3Gi" } } }, ['switch-vaas:conference.resources.cpu must be a string; give a Kubernetes quantity, e.g. "1500m" or "2"'])],
  ["resources as text", conf({ conference: { ...conference, resources: "2 CPUs" } }, ['switch-vaas:conference.resources must be a map; give { cpu, memory } as Kubernetes quantities, e.g. { cpu: "2", memory: "3Gi" }'])],
  ["an id as a number", conf({ conference: { ...conference, id: 101 } }, ['switch-vaas:conference.id must be a string; give the conference a DNS label, e.g. "physics-101"'])],
  [
    "tls set as the key file alone",
    conf({ tls: PEM_KEY }, ["switch-vaas:tls must be { domain, certificate, key }; set each with pulumi config set --path 'tls.<field>' (--secret for the certificate and the key)"]),
  ],
  ["a TLS key that is not PEM", conf({ tls: { ...tls, key: "pem-SECRET-5555555555" } }, ["switch-vaas:tls.key is not PEM; give the private key as PEM text"])],
  ["a TLS key as a number", conf({ tls: { ...tls, key: 5555555555 } }, ["switch-vaas:tls.key must be a string; give the PEM private key"])],
  [
    "a TLS key under a misspelt name",
    conf({ tls: { domain: tls.domain, certificate: tls.certificate, keyy: PEM_KEY } }, [
      "switch-vaas:tls.key is required; give the PEM private key",
      'switch-vaas:tls has an unknown key "keyy"; remove it or correct its spelling',
    ]),
  ],
  // The cdn-pop stack.
  ["no PoP at all", pop({ pop: undefined }, ["switch-vaas:pop is required; give { name, hosts, layout, addresses, reportEndpoint, origin, registry, imageTag }"])],
  ["a PoP as its name", pop({ pop: "vienna" }, ["switch-vaas:pop must be a map; give { name, hosts, layout, addresses, reportEndpoint, origin, registry, imageTag }"])],
  // Once, although every address of host1 depends on it.
  ["a subnet that is no CIDR", pop({ pop: withHost1({ subnet: "192.0.2.0/33" }) }, ['switch-vaas:pop.hosts[0].subnet "192.0.2.0/33" is not an IPv4 CIDR range; give the edges\' network, e.g. "192.0.2.0/24"'])],
  ["a gateway outside the subnet", pop({ pop: withHost1({ gateway: "198.51.100.1" }) }, ['switch-vaas:pop.hosts[0].gateway "198.51.100.1" is not an address of 192.0.2.0/24; give the router\'s address in the subnet'])],
  ["a 10 Tbit/s link (kbit/s)", pop({ pop: withHost1({ linkMbps: 10_000_000 }) }, ["switch-vaas:pop.hosts[0].linkMbps 10000000 is more than 800000; give the parent interface's capacity in Mbit/s (not kbit/s)"])],
  ["a link speed as text", pop({ pop: withHost1({ linkMbps: "1000" }) }, ["switch-vaas:pop.hosts[0].linkMbps must be a number; give the parent interface's capacity in Mbit/s, e.g. 1000"])],
  [
    "a report endpoint that is not http(s)",
    pop({ pop: { ...vienna, reportEndpoint: "ftp://switch-vaas.example.org/reports" } }, [
      'switch-vaas:pop.reportEndpoint "ftp://switch-vaas.example.org/reports" is not an http(s) URL; give the URL the instance managers send their reports to, e.g. "https://switch-vaas.example.org/v1/pops/vienna/reports"',
    ]),
  ],
  ["an empty registry", pop({ pop: { ...vienna, registry: "" } }, ['switch-vaas:pop.registry is empty; give the registry the role images are pushed to (npm run images), e.g. "registry.example.org/switch-vaas"'])],
  ["a layout as one host", pop({ pop: { ...vienna, layout: "host1" } }, ["switch-vaas:pop.layout must be a map from host name to edge roles; give e.g. { host1: [small, vod] }"])],
  [
    "report keys set as one secret without --path",
    pop({ reportKeys: REPORT_KEY }, [`switch-vaas:reportKeys must be a map from host name to key; set each host's: pulumi config set --secret --path 'reportKeys.<host>' "$(openssl rand -hex 32)"`]),
  ],
  ["a report key that is too short", pop({ reportKeys: { ...viennaKeys, host1: SHORT_REPORT_KEY } }, ["switch-vaas:reportKeys.host1 is too short; give a random key of at least 16 characters"])],
  [
    "a report key as a number",
    pop({ reportKeys: { ...viennaKeys, host1: 1234567890123456 } }, [
      `switch-vaas:reportKeys.host1 must be a string; give a random key of at least 16 characters: pulumi config set --secret --path 'reportKeys.<host>' "$(openssl rand -hex 32)"`,
    ]),
  ],
  ["a report key for a host that does not exist", pop({ reportKeys: { ...viennaKeys, host9: REPORT_KEY } }, ["switch-vaas:reportKeys.host9 names no host of the PoP; remove it or add the host to switch-vaas:pop.hosts"])],
];

describe("stack programs refuse bad config by key, before registering anything", () => {
  it.each(STACK_ROWS)("%s", async (_case, row) => {
    const mocks = row.program === "conference" ? conferenceMocks() : new RecordingMocks();
    const config = Object.fromEntries(Object.entries(row.config).filter(([, value]) => value !== undefined));
    const error = await runStack(row.program, { config, secretKeys: row.secretKeys, mocks }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(InvalidArgumentsError);
    const message = (error as InvalidArgumentsError).message;
    expect(message.split("\n")).toEqual(row.problems);
    expectClean(message);
    expect(mocks.registrations).toEqual([]);
  });
});

const scratch = mkdtempSync(join(tmpdir(), "bad-input-"));
let files = 0;
/** A file of its own under the scratch directory, named `name`. */
function file(name: string, content: string): string {
  const directory = join(scratch, String(files++));
  mkdirSync(directory);
  const path = join(directory, name);
  writeFileSync(path, content);
  return path;
}

const stackFile = (content: string) => file("Pulumi.bad.yaml", content);
/** A PoP's stack file: its name says the cdn-pop program, as a PoP stack's does. */
const popStackFile = (content: string) => file("Pulumi.pop-bad.yaml", content);
const viennaFile = readFileSync(join(stacks, "Pulumi.pop-vienna.yaml"), "utf8");
const localFile = readFileSync(join(stacks, "Pulumi.local.yaml"), "utf8");
const indented = (text: string, spaces: number) => text.replace(/^/gm, " ".repeat(spaces)).trimEnd();

/** Name, the stack file's path and contents' maker, and the lines expected (of the path). */
const PREVIEW_ROWS: [string, () => string, (path: string) => string[]][] = [
  ["an empty stack file", () => stackFile(""), (path) => [`${path} is empty; a stack file is a YAML map with a config: map, e.g. "config:" and under it "  switch-vaas:program: testbed"`]],
  ["a stack file of comments only", () => stackFile("# nothing yet\n"), (path) => [`${path} is empty; a stack file is a YAML map with a config: map, e.g. "config:" and under it "  switch-vaas:program: testbed"`]],
  ["a stack file that is a list", () => stackFile("- switch-vaas:program: testbed\n"), (path) => [`${path} is not a YAML map; a stack file is a YAML map with a config: map, e.g. "config:" and under it "  switch-vaas:program: testbed"`]],
  ["a stack file that is one word", () => stackFile("testbed\n"), (path) => [`${path} is not a YAML map; a stack file is a YAML map with a config: map, e.g. "config:" and under it "  switch-vaas:program: testbed"`]],
  [
    "a stack file that is not YAML, with a token in it",
    () => stackFile(`config:\n  switch-vaas:kubeconfigs:\n    local: "${TOKEN}\n  switch-vaas:program: [testbed\n`),
    // The quote is never closed: the file ends inside it.
    (path) => [`${path} is not YAML (MISSING_CHAR at line 5, column 1); correct the file there`],
  ],
  ["a key set twice", () => stackFile("config:\n  switch-vaas:program: testbed\n  switch-vaas:program: cdn-pop\n"), (path) => [`${path} is not YAML (DUPLICATE_KEY at line 3, column 3); correct the file there`]],
  ["a config that is a list", () => stackFile("config:\n  - switch-vaas:program: testbed\n"), (path) => [`${path}: config is not a map; give one key per line under it, e.g. "config:" and under it "  switch-vaas:program: testbed"`]],
  ["a key without a value", () => stackFile("config:\n  switch-vaas:program: testbed\n  switch-vaas:sites:\n"), (path) => [`${path}: switch-vaas:sites has no value; give it one or remove the key`]],
  [
    "a misspelt program key, which would preview the testbed's defaults",
    () => stackFile("config:\n  switch-vaas:progam: cdn-pop\n"),
    (path) => [
      `${path}: switch-vaas:progam is not a config key of this project; correct its spelling or remove it (the keys are switch-vaas:program, switch-vaas:sites, switch-vaas:kubeconfigs, switch-vaas:conference, switch-vaas:testbedStack, switch-vaas:tls, switch-vaas:pop, switch-vaas:reportKeys)`,
    ],
  ],
  ["sites as one word", () => stackFile("config:\n  switch-vaas:sites: gcp-us-west1\n"), () => ["switch-vaas:sites must be a list of sites"]],
  ["a node count as a word", () => stackFile(localFile.replace("nodes: 1", "nodes: two")), () => ["switch-vaas:sites[0].nodes must be a number; give the number of nodes, e.g. 2"]],
  [
    "a kubeconfig pasted in as one value",
    () => stackFile(`${localFile}  switch-vaas:kubeconfigs: |\n${indented(kubeconfig(), 4)}\n`),
    () => [`switch-vaas:kubeconfigs must be a map from site name to kubeconfig; set each site's: pulumi config set --secret --path 'kubeconfigs.<site>' "$(cat kubeconfig.yaml)"`],
  ],
  [
    "a kubeconfig that is not YAML",
    () => stackFile(`${localFile}  switch-vaas:kubeconfigs:\n    local: |\n${indented(BROKEN_KUBECONFIG, 6)}\n`),
    () => ["switch-vaas:kubeconfigs.local is not YAML (TAB_AS_INDENT at line 5, column 1); give the kubeconfig file's contents"],
  ],
  [
    // The YAML library warns about an unknown tag by printing its line, the token with it.
    "a kubeconfig with an unknown tag on its token",
    () => stackFile(`${localFile}  switch-vaas:kubeconfigs:\n    local: |\n      users: [{ name: u, user: { token: !vault ${TOKEN} } }]\n`),
    () => ['switch-vaas:kubeconfigs.local: the kubeconfig has no server for context "(none)"; give a kubeconfig whose context names a cluster with a server URL'],
  ],
  ["a PoP as one word", () => popStackFile("config:\n  switch-vaas:program: cdn-pop\n  switch-vaas:pop: vienna\n"), () => ["switch-vaas:pop must be a map; give { name, hosts, layout, addresses, reportEndpoint, origin, registry, imageTag }"]],
  [
    "report keys pasted in as one value",
    () => popStackFile(`${viennaFile}  switch-vaas:reportKeys: ${REPORT_KEY}\n`),
    () => [`switch-vaas:reportKeys must be a map from host name to key; set each host's: pulumi config set --secret --path 'reportKeys.<host>' "$(openssl rand -hex 32)"`],
  ],
  [
    "a conference's stack whose config names the testbed program",
    () => file("Pulumi.conf-demo.yaml", localFile),
    () => ['switch-vaas:program "testbed" disagrees with stack "conf-demo", which runs conference by its name (conf-* runs conference, pop-* runs cdn-pop, any other stack testbed); rename the stack or remove the key'],
  ],
  [
    "a testbed's stack whose config names the PoP program",
    () => stackFile(viennaFile),
    () => ['switch-vaas:program "cdn-pop" disagrees with stack "bad", which runs testbed by its name (conf-* runs conference, pop-* runs cdn-pop, any other stack testbed); rename the stack or remove the key'],
  ],
  ["a stack file not named after its stack", () => file("testbed.yaml", localFile), (path) => [`${path} is not named Pulumi.<stack>.yaml; name the stack file after its stack, as Pulumi does`]],
  ["a stack file that does not exist", () => join(scratch, "missing", "Pulumi.gone.yaml"), (path) => [`${path} does not exist; give the path of a stack file, or the name of a stack in stacks/`]],
];

function expectRefused(result: CommandResult, lines: string[], code = 1): void {
  expect(result.code).toBe(code);
  expect(result.stderr.trimEnd().split("\n")).toEqual(lines);
  expectClean(result.stderr);
  expectClean(result.stdout);
}

describe("the offline preview (npm run preview -- <stack file>) refuses a bad stack file, naming the file or the key", () => {
  it.each(PREVIEW_ROWS)("%s", async (_case, make, lines) => {
    const path = make();
    expectRefused(await runCli("offline-preview.ts", path), lines(path));
  });
});

describe("the offline preview stands in for encrypted secrets, as for missing ones, and says so", () => {
  it.each([
    ["one kubeconfig set with --path", `    local:\n      secure: v1:AAAAbbbbCCCC\n`],
    ["the whole map set without --path", `    secure: v1:AAAAbbbbCCCC\n`],
  ])("%s", async (_case, entry) => {
    const path = file("Pulumi.local.yaml", `${localFile}  switch-vaas:kubeconfigs:\n${entry}`);
    const { stdout, stderr, code } = await runCli("offline-preview.ts", path);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toContain(
      "Encrypted in the stack file, so a placeholder stood in (offline, nothing is decrypted; pulumi up uses the real ones): switch-vaas:kubeconfigs.local.",
    );
    expect(stdout).not.toContain("v1:AAAAbbbbCCCC");
  });
});

const clustersOk = { a: { location: { lat: 46, lon: 14 }, capacity: { nodes: 2, vcpuPerNode: 4, memoryGiBPerNode: 16 }, free: { cpu: "8", memory: "32Gi" } } };
const mmdbWhat = "a MaxMind GeoIP2/GeoLite2 City database (.mmdb), or leave --mmdb out for the shipped DB-IP Lite";
const clustersWhat = "a JSON map of clusters as the testbed's clusters output, with free: { cpu, memory }";

/** Name, the command line's maker, and the lines expected (of the files it made). */
const PLACE_ROWS: [string, () => string[], (args: string[]) => string[]][] = [
  ["a coordinate without its longitude", () => ["48.21"], () => ['participant "48.21" is neither "lat,lon" nor an IPv4 or IPv6 address; give e.g. 46.05,14.51 or 193.2.1.66']],
  ["an IPv4 address of three parts", () => ["46,14", "193.2.1"], () => ['participant "193.2.1" is neither "lat,lon" nor an IPv4 or IPv6 address; give e.g. 46.05,14.51 or 193.2.1.66']],
  ["an empty --last-n=", () => ["46,14", "--last-n="], () => ['--last-n "" is not a whole number; give -1 (unlimited) or a number of video streams, e.g. --last-n=5']],
  ["--expected=abc", () => ["46,14", "--expected=abc"], () => ['--expected "abc" is not a whole number; give the number of participants to size for, e.g. --expected 20']],
  ["--expected 0", () => ["46,14", "--expected", "0"], () => ["--expected 0 is too few; a conference needs at least 1 participant"]],
  ["--expected 2.5", () => ["46,14", "--expected", "2.5"], () => ['--expected "2.5" is not a whole number; give the number of participants to size for, e.g. --expected 20']],
  ["an unknown objective", () => ["46,14", "--objective", "median"], () => ['--objective "median" is not an objective; use mean, worstPair or pNN (a percentile, e.g. p95)']],
  ["a percentile of 0", () => ["46,14", "--objective", "p0"], () => ["--objective 0 is out of range; use a percentile above 0 and at most 100"]],
  ["a latitude out of range", () => ["95,14"], () => ["participant 95,14: lat 95 is out of range; use decimal degrees between -90 and 90"]],
  [
    "nobody who can be located",
    () => ["10.0.0.1", "192.168.1.1"],
    () => [
      "none of the participants could be located; give coordinates (lat,lon) for at least one",
      "participant 10.0.0.1 is a private address, which says nothing about where the participant is; give its coordinates (lat,lon) instead",
      "participant 192.168.1.1 is a private address, which says nothing about where the participant is; give its coordinates (lat,lon) instead",
    ],
  ],
  ["a --clusters file that does not exist", () => ["46,14", "--clusters", join(scratch, "none.json")], (args) => [`--clusters ${args[2]} does not exist; give ${clustersWhat}`]],
  [
    "a --clusters file that is a kubeconfig, not JSON",
    () => ["46,14", "--clusters", file("clusters.json", kubeconfig())],
    (args) => [`--clusters ${args[2]} is not JSON; give ${clustersWhat}`],
  ],
  [
    "a --clusters file cut short after a kubeconfig",
    () => ["46,14", "--clusters", file("clusters.json", `{ "a": { "kubeconfig": ${JSON.stringify(kubeconfig())},\n  "free": { "cpu": "1" `)],
    (args) => [`--clusters ${args[2]} is not JSON at line 2, column 24; give ${clustersWhat}`],
  ],
  [
    "a --clusters file with a bad quantity",
    () => ["46,14", "--clusters", file("clusters.json", JSON.stringify({ a: { ...clustersOk.a, free: { cpu: "lots", memory: "1Gi" } } }))],
    (args) => [`--clusters ${args[2]}: clusters.a.free.cpu "lots" is not a Kubernetes quantity; use e.g. "1500m"`],
  ],
  [
    "a --clusters file that is a list",
    () => ["46,14", "--clusters", file("clusters.json", JSON.stringify([clustersOk.a]))],
    (args) => [`--clusters ${args[2]}: clusters must be a map from cluster name to { location, capacity, free }`],
  ],
  ["an --mmdb that does not exist", () => ["193.2.1.66", "--mmdb", join(scratch, "none.mmdb")], (args) => [`--mmdb ${args[2]} does not exist; give ${mmdbWhat}`]],
  ["an --mmdb that is not a database", () => ["193.2.1.66", "--mmdb", file("city.mmdb", "not a database\n")], (args) => [`--mmdb ${args[2]} is not a MaxMind database; give ${mmdbWhat}`]],
  ["an --mmdb that is a directory", () => ["193.2.1.66", "--mmdb", scratch], (args) => [`--mmdb ${args[2]} is not a file; give ${mmdbWhat}`]],
  [
    "a --participants file that does not exist",
    () => ["--participants", join(scratch, "none.txt")],
    (args) => [`--participants ${args[1]} does not exist; give a file of participants, "lat,lon" or IP addresses separated by spaces or newlines`],
  ],
];

describe("npm run place refuses a bad command line, naming the participant or the flag", () => {
  it.each(PLACE_ROWS)("%s", async (_case, make, lines) => {
    const args = make();
    expectRefused(await runCli("place.ts", ...args), lines(args));
  });

  it.each([
    ["an option it does not know", ["46,14", "--lastn", "5"], 'place: --lastn is not an option (an argument that starts with "-" goes after --)'],
    ["a flag without its value", ["46,14", "--expected"], "place: Option '--expected <value>' argument missing"],
  ])("refuses %s with exit 2 and the usage", async (_case, args, first) => {
    const { stderr, code } = await runCli("place.ts", ...args);
    expect(code).toBe(2);
    const [line, blank, usage] = stderr.split("\n");
    expect([line, blank, usage?.startsWith("usage: npm run place")]).toEqual([first, "", true]);
    expectClean(stderr);
  });

  it("takes a negative latitude as a participant, without --", async () => {
    const { stdout, code } = await runCli("place.ts", "-33.92,18.42", "46.05,14.51", "--json");
    expect(code).toBe(0);
    const { participants } = JSON.parse(stdout) as { participants: { given: string; placed: boolean }[] };
    expect(participants.map((p) => [p.given, p.placed])).toEqual([
      ["-33.92,18.42", true],
      ["46.05,14.51", true],
    ]);
  });

  it("places 20,000 participants given in a file (npm cannot pass that many on the command line)", async () => {
    const many = Array.from({ length: 20_000 }, (_, i) => `${(i % 160) - 80}.5,${(i % 340) - 170}.25`).join("\n");
    const { stdout, stderr, code } = await runCli("place.ts", "--participants", file("participants.txt", many), "--json");
    expect([code, stderr]).toEqual([0, ""]);
    expect((JSON.parse(stdout) as { participants: unknown[] }).participants).toHaveLength(20_000);
  });
});

const IMAGES_USAGE = "usage: npm run images -- <dir> [--registry <registry> --tag <tag> [--push]]";

describe("npm run images refuses a bad command line before writing or building anything", () => {
  it.each([
    ["--push without a registry", ["build", "--push"], "--push needs --registry and --tag: images are pushed to <registry>/pop-<image>:<tag>; give both, e.g. --registry localhost:5000/switch-vaas --tag 0.1.0"],
    ["--registry without --tag", ["build", "--registry", "localhost:5000/switch-vaas"], "--registry needs --tag; give the tag to build the images with, e.g. --tag 0.1.0"],
    ["a tag Docker refuses", ["build", "--registry", "localhost:5000/switch-vaas", "--tag", "0.1 beta"], `--tag "0.1 beta" is not a Docker tag; use letters, digits, '_', '.' and '-' (at most 128), e.g. 0.1.0`],
    ["no directory", [], "<dir> is missing; give the directory to write the build contexts to, e.g. build/images"],
  ])("%s", async (_case, args, line) => {
    expectRefused(await runCli("images.ts", ...args), [`images: ${line}`, "", IMAGES_USAGE], 2);
  });
});

describe("the instance manager refuses a bad environment, one line per variable, never printing a value that may be secret", () => {
  const good = {
    POP: "vienna",
    HOST: "host1",
    PARENT_INTERFACE: "eth0",
    LINK_MBPS: "1000",
    EDGES: JSON.stringify([{ role: "small", statusUrl: "http://192.0.2.20/pop-status" }]),
    REPORT_ENDPOINT: "https://switch-vaas.example.org/v1/pops/vienna/reports",
    REPORT_KEY: REPORT_KEY,
  };
  it.each([
    ["a link speed in words", { ...good, LINK_MBPS: "fast" }, ['instance manager: LINK_MBPS "fast" is not a number; give the interface\'s capacity in Mbit/s, e.g. 1000']],
    [
      "a report endpoint with credentials, not http(s)",
      { ...good, REPORT_ENDPOINT: `ftp://pop:${TOKEN}@switch-vaas.example.org/reports` },
      ["instance manager: REPORT_ENDPOINT is not an http(s) URL; give the URL of the service's report route, e.g. https://switch-vaas.example.org/v1/pops/vienna/reports"],
    ],
    [
      "a short report key and no host",
      { ...good, HOST: undefined, REPORT_KEY: SHORT_REPORT_KEY },
      [
        "instance manager: HOST is required; name this host as the PoP's config does",
        "instance manager: REPORT_KEY must be at least 16 characters; give this host's report key, as the PoP stack's reportKeys holds it",
      ],
    ],
    ["a period of 0 seconds", { ...good, PERIOD_SECONDS: "0" }, ["instance manager: PERIOD_SECONDS is 0; give the seconds between reports, e.g. 600"]],
  ])("%s", async (_case, env, lines) => {
    const defined = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
    expectRefused(await runScript("automation/instance-manager/main.ts", [], { env: defined }), lines, 2);
  });
});

/**
 * Any field of a valid input, replaced by a value of another type, is reported as "must be …"
 * (or as not one of its values) on that field's own line, never as "is required", and never in
 * zod's own words.
 */
describe("a value of the wrong type in any field", () => {
  const others = [42, "text", true, null, [1], { a: 1 }];
  const typeOf = (value: unknown) => (value === null ? "null" : Array.isArray(value) ? "array" : typeof value);
  /** Every path to a leaf or a branch of `value`. */
  const paths = (value: unknown, prefix: (string | number)[] = []): (string | number)[][] =>
    typeof value === "object" && value !== null
      ? Object.entries(value).flatMap(([key, inner]) => {
          const path = [...prefix, Array.isArray(value) ? Number(key) : key];
          return [path, ...paths(inner, path)];
        })
      : [];
  const replaced = (value: unknown, [head, ...rest]: (string | number)[], by: unknown): unknown => {
    if (head === undefined) {
      return by;
    }
    const copy = (Array.isArray(value) ? [...(value as unknown[])] : { ...(value as object) }) as Record<string | number, unknown>;
    copy[head] = replaced(copy[head], rest, by);
    return copy;
  };
  const keyOf = (prefix: string, path: (string | number)[]) =>
    prefix + path.map((part) => (typeof part === "number" ? `[${part}]` : `.${part}`)).join("");

  it.each([
    ["sites", (value: unknown) => parseSites(value, "sites"), [gke, local]],
    ["kubeconfigs", (value: unknown) => parseKubeconfigs(value, "kubeconfigs"), { local: kubeconfig() }],
    ["conference", (value: unknown) => parseConferenceSpec(value, "conference"), conference],
    ["tls", (value: unknown) => parseTlsConfig(value, "tls"), tls],
    ["pop", (value: unknown) => parsePopSpec(value, "pop"), vienna],
    ["reportKeys", (value: unknown) => parseReportKeys(value, "reportKeys"), viennaKeys],
    ["request", (value: unknown) => parsePlacementRequest(value, "request"), { participants: [{ lat: 46, lon: 14, country: "SI" }], expectedParticipants: 5, lastN: 5, simulcast: true, objective: { percentile: 95 } }],
    ["clusters", (value: unknown) => parseCandidateClusters(value, "clusters"), clustersOk],
    [
      "input",
      (value: unknown) => parseLayoutInput(value, "input"),
      { hosts: [{ name: "h0", cpu: { capacityCores: 8, usedCores: 1 }, network: { linkMbps: 1000, txMbps: 10 } }], requests: { small: 1, large: 1, vod: 1, live: 1 }, current: { h0: ["small"] }, tolerance: 0.1, maxMoves: 2 },
    ],
    [
      "report",
      (value: unknown) => parseReport(value, "report"),
      { pop: "vienna", host: "host1", periodStart: "2026-11-23T10:00:00Z", periodEnd: "2026-11-23T10:10:00Z", cpu: { capacityCores: 8, usedCores: 2 }, network: { linkMbps: 1000, txMbps: 10 }, requests: { small: 1, large: 1, vod: 1, live: 1 } },
    ],
  ] as [string, (value: unknown) => unknown, unknown][])("of %s", (prefix, parse, valid) => {
    parse(valid);
    const candidates = paths(valid);
    fc.assert(
      fc.property(fc.constantFrom(...candidates), fc.constantFrom(...others), (path, by) => {
        const original = path.reduce<unknown>((value, part) => (value as Record<string | number, unknown>)[part], valid);
        fc.pre(typeOf(original) !== typeOf(by));
        let message: string | undefined;
        try {
          parse(replaced(valid, path, by));
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidArgumentsError);
          message = (error as Error).message;
        }
        // Some fields take more than one type (a percentile objective or a word); those may pass.
        if (message === undefined) {
          return;
        }
        expectClean(message);
        const escaped = (at: (string | number)[]) => keyOf(prefix, at).replace(/[.[\]]/g, "\\$&");
        // The field's own key, or (for a union, which reports as a whole) one of its parents'.
        const keys = path.map((_, index) => escaped(path.slice(0, index + 1))).join("|");
        expect(message.split("\n"), message).toContainEqual(expect.stringMatching(new RegExp(`^(${keys}) (must be |.* is not )`)));
        expect(message).not.toMatch(new RegExp(`^${escaped(path)} is required`, "m"));
      }),
      { numRuns: 300 },
    );
  });
});
