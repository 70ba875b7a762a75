import { chmodSync, copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { POPS_VARIABLE, POP_KEYS_FILE_VARIABLE, POP_MODELS_VARIABLE, type ServedPop, loadPops, stackConfigOf } from "../../automation/service/loops/pop-config.ts";
import { readStackConfig } from "../../automation/engine/stack-config.ts";
import { parsePopSpec } from "../../domain/contracts/cdn-pop.ts";
import { invalidArgumentsMessage } from "../support/validation.ts";

const stacks = join(import.meta.dirname, "..", "..", "stacks");
const VIENNA = join(stacks, "Pulumi.pop-vienna.yaml");
const LOCAL = join(stacks, "Pulumi.pop-local.yaml");
/** Planted keys: no message and no log of a PoP may carry one. */
const KEYS = {
  vienna: { host1: "tok-SECRET-vienna-host1-0001", host2: "tok-SECRET-vienna-host2-0002", host3: "tok-SECRET-vienna-host3-0003" },
  local: { local: "tok-SECRET-local-local-00004" },
};
const PLANTED = [...Object.values(KEYS.vienna), ...Object.values(KEYS.local), "tok-SECRET-shrt", "tok-SECRET-in-a-stack-file-0005"];
/** The planted keys `text` carries. */
const leaks = (text: string) => PLANTED.filter((key) => text.includes(key));

function directory(): string {
  return mkdtempSync(join(tmpdir(), "pop-config-"));
}

/** A keys file with `mode`. */
function keysFile(keys: unknown, mode = 0o600, text = JSON.stringify(keys)): string {
  const path = join(directory(), "pop-keys.json");
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

const env = (pops: string, keys: string | undefined = keysFile({ vienna: KEYS.vienna })) => ({ [POPS_VARIABLE]: pops, [POP_KEYS_FILE_VARIABLE]: keys });

/** The message loadPops throws, checked for every planted key. */
function refusal(environment: Record<string, string | undefined>): string {
  const message = invalidArgumentsMessage(() => loadPops(environment));
  expect(leaks(message)).toEqual([]);
  return message;
}

describe("loadPops", () => {
  it("reads the example PoPs and gives each its stack, config and keys", () => {
    const pops = loadPops(env(`${VIENNA}, ${LOCAL}`, keysFile(KEYS)));
    expect(pops.map(({ name, stack, file }) => ({ name, stack, file }))).toEqual([
      { name: "vienna", stack: "pop-vienna", file: VIENNA },
      { name: "local", stack: "pop-local", file: LOCAL },
    ]);
    expect(pops[0]!.config).toEqual(parsePopSpec(JSON.parse(readStackConfig(VIENNA).config["switch-vaas:pop"]!), "pop"));
    expect(pops.map((pop) => pop.keys)).toEqual([KEYS.vienna, KEYS.local]);
  });

  it("never writes a key when a PoP is logged or serialized", () => {
    const pops = loadPops(env(VIENNA));
    // The control: the scan finds a key where there is one.
    expect(leaks(JSON.stringify(pops[0]!.keys))).toEqual(Object.values(KEYS.vienna));
    expect(leaks(JSON.stringify(pops))).toEqual([]);
    expect(leaks(inspect(pops, { depth: null }))).toEqual([]);
    expect(leaks(JSON.stringify({ ...pops[0] }))).toEqual([]);
  });

  it("reads a directory's Pulumi.pop-*.yaml, in name order, and nothing else in it", () => {
    const dir = directory();
    copyFileSync(VIENNA, join(dir, "Pulumi.pop-vienna.yaml"));
    copyFileSync(LOCAL, join(dir, "Pulumi.pop-local.yaml"));
    copyFileSync(join(stacks, "Pulumi.testbed.yaml"), join(dir, "Pulumi.testbed.yaml"));
    writeFileSync(join(dir, "notes.txt"), "not a stack");
    expect(loadPops(env(dir, keysFile(KEYS))).map((pop: ServedPop) => pop.file)).toEqual([join(dir, "Pulumi.pop-local.yaml"), join(dir, "Pulumi.pop-vienna.yaml")]);
  });

  it.each([undefined, "", " , "])("runs no PoP for SWITCH_POPS %j, and needs no keys file then", (pops) => {
    expect(loadPops({ [POPS_VARIABLE]: pops })).toEqual([]);
  });

  it.each([0o600, 0o400, 0o700])("takes a keys file of mode %o", (mode) => {
    expect(loadPops(env(VIENNA, keysFile({ vienna: KEYS.vienna }, mode))).map((pop) => pop.name)).toEqual(["vienna"]);
  });

  it.each([0o644, 0o640, 0o604, 0o660, 0o601])("refuses a keys file of mode %o, naming it and the fix", (mode) => {
    const file = keysFile({ vienna: KEYS.vienna }, mode);
    expect(refusal(env(VIENNA, file))).toBe(
      `SWITCH_POP_KEYS_FILE: ${file} may be read by others than its owner (mode ${mode.toString(8).padStart(4, "0")}); it holds secrets: chmod 600 ${file}`,
    );
  });

  it("refuses a missing host key, naming the PoP and the host", () => {
    const file = keysFile({ vienna: { host1: KEYS.vienna.host1, host3: KEYS.vienna.host3 } });
    expect(refusal(env(VIENNA, file))).toBe(
      `${file} has no key for host host2 of PoP vienna (${VIENNA}); add "host2": "<key>" under "vienna", e.g. the output of openssl rand -hex 32`,
    );
  });

  it("refuses every host of a PoP the keys file leaves out", () => {
    const file = keysFile({ vienna: KEYS.vienna });
    expect(refusal(env(`${VIENNA},${LOCAL}`, file))).toBe(
      `${file} has no key for host local of PoP local (${LOCAL}); add "local": "<key>" under "local", e.g. the output of openssl rand -hex 32`,
    );
  });

  it.each<[string, Record<string, string | undefined>, string]>([
    ["no keys file", { [POPS_VARIABLE]: VIENNA }, `SWITCH_POP_KEYS_FILE is not set; give a file of each host's report key, { "<pop>": { "<host>": "<key>" } } (chmod 600), for the PoPs of SWITCH_POPS`],
    ["a keys file that does not exist", env(VIENNA, "/nonexistent/pop-keys.json"), "SWITCH_POP_KEYS_FILE: /nonexistent/pop-keys.json cannot be read (ENOENT); give the JSON file of the hosts' report keys"],
  ])("refuses %s", (_case, environment, message) => {
    expect(refusal(environment)).toBe(message);
  });

  it.each<[string, () => string, (file: string) => string]>([
    ["a short key", () => keysFile({ vienna: { ...KEYS.vienna, host2: "tok-SECRET-shrt" } }), (file) => `${file}: vienna.host2 is too short; give a random key of at least 16 characters`],
    ["a keys file that is not JSON", () => keysFile(undefined, 0o600, `{ "vienna": { "host1": "${KEYS.vienna.host1}", `), (file) => `${file} is not JSON; give { "<pop>": { "<host>": "<key>" } }`],
    ["a keys file that is a list", () => keysFile([KEYS.vienna]), (file) => `${file} is not a JSON map; give { "<pop>": { "<host>": "<key>" } }`],
    ["a PoP's keys that are a list", () => keysFile({ vienna: Object.values(KEYS.vienna) }), (file) => `${file}: vienna is not a map from host name to key; give { "<pop>": { "<host>": "<key>" } }`],
    ["a key for a host the PoP lacks", () => keysFile({ vienna: { ...KEYS.vienna, host4: KEYS.local.local } }), (file) => `${file}: vienna.host4 names no host of PoP vienna (${VIENNA}); remove it or correct its name`],
    ["keys of a PoP not served", () => keysFile(KEYS), (file) => `${file}: "local" is no PoP of SWITCH_POPS; remove it or add its stack file there`],
    ["one key for two hosts", () => keysFile({ vienna: { ...KEYS.vienna, host3: KEYS.vienna.host1 } }), (file) => `${file}: vienna.host3 has the same key as vienna.host1; give every host its own key`],
  ])("refuses %s, never quoting a key", (_case, keys, message) => {
    const file = keys();
    expect(refusal(env(VIENNA, file))).toBe(message(file));
  });

  /** A stack file in a fresh directory, named `name`. */
  function stackFile(name: string, text: string): string {
    const path = join(directory(), name);
    writeFileSync(path, text);
    return path;
  }
  const viennaText = readFileSync(VIENNA, "utf8");

  it.each<[string, string, string, (file: string) => string]>([
    [
      "report keys in clear in a stack file",
      "Pulumi.pop-vienna.yaml",
      `${viennaText}\n  switch-vaas:reportKeys:\n    host1: tok-SECRET-in-a-stack-file-0005\n`,
      (file) => `${file}: switch-vaas:reportKeys is not encrypted; remove it, give the keys in SWITCH_POP_KEYS_FILE, and set them only with pulumi config set --secret`,
    ],
    [
      "a stack file named for another stack",
      "Pulumi.pop-graz.yaml",
      viennaText,
      (file) => `${file} is the stack file of pop-graz, but configures PoP vienna, whose stack is pop-vienna; rename the file Pulumi.pop-vienna.yaml or correct switch-vaas:pop.name`,
    ],
    ["a testbed's stack file", "Pulumi.testbed.yaml", readFileSync(join(stacks, "Pulumi.testbed.yaml"), "utf8"), (file) => `${file}: switch-vaas:program is testbed, not cdn-pop; give cdn-pop stack files in SWITCH_POPS`],
    ["a stack file without a PoP", "Pulumi.pop-x.yaml", "config:\n  switch-vaas:program: cdn-pop\n", (file) => `${file} has no switch-vaas:pop; give cdn-pop stack files in SWITCH_POPS, e.g. stacks/Pulumi.pop-vienna.yaml`],
    ["an encrypted PoP", "Pulumi.pop-x.yaml", "config:\n  switch-vaas:pop:\n    secure: v1:AAAA\n", (file) => `${file}: switch-vaas:pop is encrypted; the service reads the PoP's config in clear, so set it without --secret`],
    ["a PoP that is a word", "Pulumi.pop-x.yaml", "config:\n  switch-vaas:pop: vienna\n", (file) => `${file}: switch-vaas:pop must be a map; give { name, hosts, layout, addresses, reportEndpoint, origin, registry, imageTag }`],
  ])("refuses %s", (_case, name, text, message) => {
    const file = stackFile(name, text);
    expect(refusal(env(file))).toBe(message(file));
  });

  it("refuses two stack files of one PoP, and a directory with none", () => {
    const twin = stackFile("vienna.yaml", viennaText);
    const empty = directory();
    expect(refusal(env(`${VIENNA},${twin}`))).toBe(`${twin} configures PoP vienna, as ${VIENNA} does; give each PoP one stack file in SWITCH_POPS`);
    expect(refusal(env(empty))).toBe(`SWITCH_POPS: ${empty} has no Pulumi.pop-*.yaml; give a directory of cdn-pop stack files, or the files`);
    expect(refusal(env("/nonexistent/Pulumi.pop-x.yaml"))).toBe(
      "SWITCH_POPS: /nonexistent/Pulumi.pop-x.yaml cannot be read (ENOENT); give cdn-pop stack files, Pulumi.pop-<name>.yaml, or a directory of them",
    );
  });

  it("names every problem at once, of the stack files and the keys", () => {
    const word = stackFile("Pulumi.pop-x.yaml", "config:\n  switch-vaas:pop: vienna\n");
    const file = keysFile({ vienna: { host1: KEYS.vienna.host1 } });
    expect(refusal(env(`${VIENNA},${word}`, file)).split("\n")).toEqual([
      `${word}: switch-vaas:pop must be a map; give { name, hosts, layout, addresses, reportEndpoint, origin, registry, imageTag }`,
      `${file} has no key for host host2 of PoP vienna (${VIENNA}); add "host2": "<key>" under "vienna", e.g. the output of openssl rand -hex 32`,
      `${file} has no key for host host3 of PoP vienna (${VIENNA}); add "host3": "<key>" under "vienna", e.g. the output of openssl rand -hex 32`,
    ]);
  });
});

describe("stackConfigOf", () => {
  it("lays every PoP out by the volume model unless SWITCH_POP_MODELS names another", () => {
    expect(loadPops(env(VIENNA)).map((pop) => pop.model)).toEqual(["volume"]);
    expect(loadPops({ ...env(VIENNA), [POP_MODELS_VARIABLE]: "vienna=paper" }).map((pop) => pop.model)).toEqual(["paper"]);
  });

  it("refuses a model that is not one, a PoP it does not serve, and an entry that is not <pop>=<model>", () => {
    expect(refusal({ ...env(VIENNA), [POP_MODELS_VARIABLE]: "vienna=fast, paris=paper, vienna" }).split("\n")).toEqual([
      'SWITCH_POP_MODELS: "fast" is not a layout model; use volume or paper (for PoP vienna)',
      "SWITCH_POP_MODELS: no PoP paris is in SWITCH_POPS; name one of vienna",
      'SWITCH_POP_MODELS: "vienna" is not <pop>=<model>; give e.g. vienna=paper',
    ]);
  });

  it("gives the Engine the program, the PoP and its keys, the keys alone secret", () => {
    const [vienna] = loadPops(env(VIENNA));
    const config = stackConfigOf(vienna!.config, vienna!.keys);
    expect(config).toEqual({
      "switch-vaas:program": { value: "cdn-pop", secret: false },
      "switch-vaas:pop": { value: JSON.stringify(vienna!.config), secret: false },
      "switch-vaas:reportKeys": { value: JSON.stringify(KEYS.vienna), secret: true },
    });
    // Only the secret entry carries a key.
    expect(Object.entries(config).filter(([, entry]) => leaks(entry.value).length > 0).map(([key, entry]) => [key, entry.secret])).toEqual([["switch-vaas:reportKeys", true]]);
  });

  it("refuses keys that are not exactly the PoP's hosts', as the stack would", () => {
    const [vienna] = loadPops(env(VIENNA));
    const message = invalidArgumentsMessage(() => stackConfigOf(vienna!.config, { host1: KEYS.vienna.host1, host2: KEYS.vienna.host2, host9: KEYS.local.local }));
    expect(message).toBe(
      "reportKeys.host3 is missing; every host's instance manager signs its reports with its own key\nreportKeys.host9 names no host of the PoP; remove it or add the host to pop.hosts",
    );
    expect(leaks(message)).toEqual([]);
  });
});
