import { closeSync, fstatSync, openSync, readFileSync, readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { CDN_POP_CONFIG, type PopSpec, parseCdnPop, parsePopSpec, parseReportKeys, popStackName } from "../../../domain/contracts/cdn-pop.ts";
import { PROGRAM_KEY, type ProgramName, qualifiedKey } from "../../../domain/contracts/project.ts";
import { InvalidArgumentsError } from "../../../domain/errors.ts";
import type { StackConfigMap } from "../../engine/engine.ts";
import { readStackConfig } from "../../engine/stack-config.ts";

/**
 * The PoPs the service runs the loop for (ARCHITECTURE.md "PoP loop"), read once at start:
 *
 * - `SWITCH_POPS`: cdn-pop stack files (stacks/Pulumi.pop-vienna.yaml is one), comma-separated,
 *   or directories of them (every `Pulumi.pop-*.yaml` inside). Each file's `switch-vaas:pop` is
 *   the PoP as it runs now; its stack is `pop-<pop.name>`.
 * - `SWITCH_POP_KEYS_FILE`: each host's report key, `{ "<pop>": { "<host>": "<key>" } }` in JSON,
 *   readable by its owner alone (mode 0600 or stricter). The keys are secrets: a stack file holds
 *   them encrypted (`pulumi config set --secret`), which the service cannot read without the
 *   stack's secrets provider, and the store never holds them. This file is their one source; the
 *   service passes them on to the PoP's stack as secret config ({@link stackConfigOf}).
 *
 * - `SWITCH_POP_MODELS`: the layout model of a PoP where it is not the default `volume` (issue 19:
 *   the mix and the demand's volume), e.g. `vienna=paper` for the seed paper's mix alone;
 *   comma-separated.
 *
 * Every problem is refused at start, all at once, naming the file, the PoP and the host; no
 * message quotes a key. Unset `SWITCH_POPS` means no PoPs: no host can report.
 */

/** The variable that lists the PoPs' stack files. */
export const POPS_VARIABLE = "SWITCH_POPS";
/** The variable that names the report keys' file. */
export const POP_KEYS_FILE_VARIABLE = "SWITCH_POP_KEYS_FILE";
/** The variable that picks a PoP's layout model. */
export const POP_MODELS_VARIABLE = "SWITCH_POP_MODELS";
/** How the loop lays out a PoP: `volume`, the mix and the demand's volume (the default); `paper`, the seed paper's mix alone. */
export const POP_MODELS = ["volume", "paper"] as const;
export type PopModel = (typeof POP_MODELS)[number];
/** A stack file in a directory of them. */
const POP_STACK_FILE = /^Pulumi\.pop-.+\.yaml$/;
/** A keys file holds a few dozen keys; anything much larger is not one, and is not read whole. */
const MAX_KEYS_FILE_BYTES = 1024 * 1024;
/** Set by the service on every PoP stack, as the example stack files set it. */
const CDN_POP_PROGRAM: ProgramName = "cdn-pop";

/** A PoP the service runs. */
export interface ServedPop {
  /** The PoP's name, `pop.name` of its config. */
  name: string;
  /** Its stack, `pop-<name>`. */
  stack: string;
  /** The stack file it was read from, as given. */
  file: string;
  /** The PoP as its stack file configures it. */
  config: PopSpec;
  /** How the loop lays it out. */
  model: PopModel;
  /**
   * Each host's report key. Not enumerable, so that logging or serializing the PoP (a log line,
   * JSON.stringify, util.inspect) never writes a key; read it by name.
   */
  readonly keys: Readonly<Record<string, string>>;
}

/** Reads the PoPs of `SWITCH_POPS` and their keys from `SWITCH_POP_KEYS_FILE`; throws an InvalidArgumentsError naming every problem. */
export function loadPops(env: Readonly<Record<string, string | undefined>>): ServedPop[] {
  const entries = (env[POPS_VARIABLE] ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  if (entries.length === 0) {
    return [];
  }
  const files = stackFiles(entries);
  const problems: string[] = [];
  const pops: Omit<ServedPop, "keys" | "model">[] = [];
  for (const file of files) {
    try {
      const pop = readPop(file);
      const twin = pops.find((other) => other.name === pop.name);
      if (twin !== undefined) {
        problems.push(`${file} configures PoP ${pop.name}, as ${twin.file} does; give each PoP one stack file in ${POPS_VARIABLE}`);
      } else {
        pops.push(pop);
      }
    } catch (error) {
      if (!(error instanceof InvalidArgumentsError)) {
        throw error;
      }
      problems.push(...error.problems);
    }
  }
  const keysFile = env[POP_KEYS_FILE_VARIABLE];
  if (keysFile === undefined || keysFile.trim() === "") {
    problems.push(`${POP_KEYS_FILE_VARIABLE} is not set; give a file of each host's report key, { "<pop>": { "<host>": "<key>" } } (chmod 600), for the PoPs of ${POPS_VARIABLE}`);
    throw new InvalidArgumentsError(problems);
  }
  // A PoP whose stack file failed has no name to match: keys are judged unknown only when every file was read.
  const keys = readKeysFile(keysFile, pops, problems.length === 0, problems);
  const models = readModels(env[POP_MODELS_VARIABLE] ?? "", pops, problems.length === 0, problems);
  if (problems.length > 0) {
    throw new InvalidArgumentsError(problems);
  }
  return pops.map(
    (pop) => Object.defineProperty({ ...pop, model: models.get(pop.name) ?? "volume" }, "keys", { value: Object.freeze({ ...keys.get(pop.name) }), enumerable: false }) as ServedPop,
  );
}

/** `SWITCH_POP_MODELS`'s `<pop>=<model>` entries; a PoP not served is refused only when every stack file was read. */
function readModels(text: string, pops: readonly { name: string }[], judgeNames: boolean, problems: string[]): Map<string, PopModel> {
  const models = new Map<string, PopModel>();
  for (const entry of text.split(",").map((part) => part.trim()).filter((part) => part !== "")) {
    const [pop, model, ...rest] = entry.split("=").map((part) => part.trim());
    if (pop === undefined || pop === "" || model === undefined || rest.length > 0) {
      problems.push(`${POP_MODELS_VARIABLE}: "${entry}" is not <pop>=<model>; give e.g. vienna=paper`);
    } else if (!(POP_MODELS as readonly string[]).includes(model)) {
      problems.push(`${POP_MODELS_VARIABLE}: "${model}" is not a layout model; use ${POP_MODELS.join(" or ")} (for PoP ${pop})`);
    } else if (judgeNames && !pops.some((served) => served.name === pop)) {
      problems.push(`${POP_MODELS_VARIABLE}: no PoP ${pop} is in ${POPS_VARIABLE}; name one of ${pops.map((served) => served.name).join(", ")}`);
    } else {
      models.set(pop, model as PopModel);
    }
  }
  return models;
}

/**
 * The config of a PoP's stack as the Engine sets it: the program, the PoP (e.g. the loop's next
 * layout, domain/wae/pop-config.ts) and its hosts' report keys, secret. Throws an
 * InvalidArgumentsError when `keys` are not exactly the PoP's hosts', as the stack itself would.
 */
export function stackConfigOf(pop: PopSpec, keys: Readonly<Record<string, string>>): StackConfigMap {
  const reportKeys = parseReportKeys(keys, CDN_POP_CONFIG.reportKeys);
  const checked = parseCdnPop({ pop, reportKeyHosts: Object.keys(reportKeys) }, "");
  return {
    [qualifiedKey(PROGRAM_KEY)]: { value: CDN_POP_PROGRAM, secret: false },
    [qualifiedKey(CDN_POP_CONFIG.pop)]: { value: JSON.stringify(checked), secret: false },
    [qualifiedKey(CDN_POP_CONFIG.reportKeys)]: { value: JSON.stringify(reportKeys), secret: true },
  };
}

/** The stack files of the list: files as given, directories as their `Pulumi.pop-*.yaml`, sorted. */
function stackFiles(entries: readonly string[]): string[] {
  const files: string[] = [];
  const problems: string[] = [];
  for (const entry of entries) {
    let directory: boolean;
    try {
      directory = statSync(entry).isDirectory();
    } catch (error) {
      problems.push(`${POPS_VARIABLE}: ${entry} cannot be read (${(error as NodeJS.ErrnoException).code ?? "unreadable"}); give cdn-pop stack files, Pulumi.pop-<name>.yaml, or a directory of them`);
      continue;
    }
    if (!directory) {
      files.push(entry);
      continue;
    }
    const found = readdirSync(entry)
      .filter((name) => POP_STACK_FILE.test(name))
      .sort()
      .map((name) => join(entry, name));
    if (found.length === 0) {
      problems.push(`${POPS_VARIABLE}: ${entry} has no Pulumi.pop-*.yaml; give a directory of cdn-pop stack files, or the files`);
    }
    files.push(...found);
  }
  if (problems.length > 0) {
    throw new InvalidArgumentsError(problems);
  }
  return files;
}

/** One stack file's PoP. Messages name the file and the key, never the file's text. */
function readPop(file: string): Omit<ServedPop, "keys" | "model"> {
  const { config, secretKeys } = readStackConfig(file);
  const program = config[qualifiedKey(PROGRAM_KEY)];
  if (program !== undefined && program !== CDN_POP_PROGRAM) {
    throw new InvalidArgumentsError([`${file}: ${qualifiedKey(PROGRAM_KEY)} is ${program}, not ${CDN_POP_PROGRAM}; give cdn-pop stack files in ${POPS_VARIABLE}`]);
  }
  const popKey = qualifiedKey(CDN_POP_CONFIG.pop);
  const reportKeysKey = qualifiedKey(CDN_POP_CONFIG.reportKeys);
  const text = config[popKey];
  if (text === undefined) {
    throw new InvalidArgumentsError([`${file} has no ${popKey}; give cdn-pop stack files in ${POPS_VARIABLE}, e.g. stacks/Pulumi.pop-vienna.yaml`]);
  }
  if (secretKeys.includes(popKey)) {
    throw new InvalidArgumentsError([`${file}: ${popKey} is encrypted; the service reads the PoP's config in clear, so set it without --secret`]);
  }
  if (config[reportKeysKey] !== undefined && !secretKeys.includes(reportKeysKey)) {
    // A key in clear in a stack file is a key in version control.
    throw new InvalidArgumentsError([
      `${file}: ${reportKeysKey} is not encrypted; remove it, give the keys in ${POP_KEYS_FILE_VARIABLE}, and set them only with pulumi config set --secret`,
    ]);
  }
  // readStackConfig gives objects as JSON and strings as they are; a string is not a PoP either way.
  let value: unknown = text;
  try {
    value = JSON.parse(text);
  } catch {
    // A plain string: parsePopSpec says it is not a map.
  }
  const pop = parsePopSpec(value, `${file}: ${popKey}`);
  const stack = popStackName(pop.name);
  const named = /^Pulumi\.(.+)\.yaml$/.exec(basename(file))?.[1];
  if (named !== undefined && named !== stack) {
    // `pulumi up -s <named>` by hand would then run another stack than the service's.
    throw new InvalidArgumentsError([`${file} is the stack file of ${named}, but configures PoP ${pop.name}, whose stack is ${stack}; rename the file Pulumi.${stack}.yaml or correct ${popKey}.name`]);
  }
  return { name: pop.name, stack, file, config: pop };
}

/** Each PoP's keys; adds to `problems` what is wrong, naming the PoP and the host, never a key. */
function readKeysFile(file: string, pops: readonly Omit<ServedPop, "keys" | "model">[], allPops: boolean, problems: string[]): Map<string, Record<string, string>> {
  const keys = new Map<string, Record<string, string>>();
  let text: string;
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    // The mode of the file opened, not of whatever the path names a moment later.
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      problems.push(`${POP_KEYS_FILE_VARIABLE}: ${file} is not a file; give the JSON file of the hosts' report keys`);
      return keys;
    }
    if ((stat.mode & 0o077) !== 0) {
      problems.push(`${POP_KEYS_FILE_VARIABLE}: ${file} may be read by others than its owner (mode ${(stat.mode & 0o777).toString(8).padStart(4, "0")}); it holds secrets: chmod 600 ${file}`);
      return keys;
    }
    if (stat.size > MAX_KEYS_FILE_BYTES) {
      problems.push(`${POP_KEYS_FILE_VARIABLE}: ${file} is ${stat.size} bytes, more than a keys file's ${MAX_KEYS_FILE_BYTES}; give the JSON file of the hosts' report keys`);
      return keys;
    }
    text = readFileSync(fd, "utf8");
  } catch (error) {
    problems.push(`${POP_KEYS_FILE_VARIABLE}: ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? "unreadable"}); give the JSON file of the hosts' report keys`);
    return keys;
  } finally {
    if (fd !== undefined) {
      closeSync(fd);
    }
  }
  const example = '{ "<pop>": { "<host>": "<key>" } }';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the text, which is keys.
    problems.push(`${file} is not JSON; give ${example}`);
    return keys;
  }
  if (!isMap(value)) {
    problems.push(`${file} is not a JSON map; give ${example}`);
    return keys;
  }
  const served = new Set(pops.map((pop) => pop.name));
  for (const pop of Object.keys(value)) {
    if (allPops && !served.has(pop)) {
      problems.push(`${file}: ${JSON.stringify(pop)} is no PoP of ${POPS_VARIABLE}; remove it or add its stack file there`);
    }
  }
  const owners = new Map<string, string>();
  for (const pop of pops) {
    const given = Object.hasOwn(value, pop.name) ? value[pop.name] : {};
    if (!isMap(given)) {
      problems.push(`${file}: ${pop.name} is not a map from host name to key; give ${example}`);
      continue;
    }
    let parsed: Record<string, string>;
    try {
      parsed = parseReportKeys(given, `${file}: ${pop.name}`);
    } catch (error) {
      if (!(error instanceof InvalidArgumentsError)) {
        throw error;
      }
      problems.push(...error.problems);
      continue;
    }
    const hosts = new Set(pop.config.hosts.map((host) => host.name));
    for (const host of hosts) {
      const key = Object.hasOwn(parsed, host) ? parsed[host] : undefined;
      if (key === undefined) {
        problems.push(`${file} has no key for host ${host} of PoP ${pop.name} (${pop.file}); add "${host}": "<key>" under "${pop.name}", e.g. the output of openssl rand -hex 32`);
        continue;
      }
      // One host holding another's key could sign that host's reports.
      const owner = owners.get(key);
      if (owner !== undefined) {
        problems.push(`${file}: ${pop.name}.${host} has the same key as ${owner}; give every host its own key`);
      }
      owners.set(key, `${pop.name}.${host}`);
    }
    for (const host of Object.keys(parsed)) {
      if (!hosts.has(host)) {
        problems.push(`${file}: ${pop.name}.${host} names no host of PoP ${pop.name} (${pop.file}); remove it or correct its name`);
      }
    }
    keys.set(pop.name, parsed);
  }
  return keys;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
