import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { programOfStack } from "../../domain/contracts/project.ts";
import { CDN_POP_CONFIG, DEFAULT_LINK_MBPS, parsePopSpec } from "../../domain/contracts/cdn-pop.ts";
import { CONFERENCE_CONFIG, DEFAULT_TESTBED_STACK, parseConferenceSpec } from "../../domain/contracts/conference.ts";
import { CONFIG_KEYS } from "../../domain/contracts/config-keys.ts";
import {
  DEFAULT_DELETION_PROTECTION,
  DEFAULT_DISK_SIZE_GB,
  DEFAULT_DISK_TYPE,
  DEFAULT_EXPOSURE,
  DEFAULT_MACHINE_TYPE,
  DEFAULT_MEDIA_SOURCE_RANGES,
  DEFAULT_NETWORK,
  DEFAULT_NODE_COUNT,
  DEFAULT_RELEASE_CHANNEL,
  DEFAULT_SITES,
  MAX_DISK_SIZE_GB,
  MAX_MEMORY_GIB_PER_NODE,
  MAX_NODES,
  MAX_VCPU_PER_NODE,
  TESTBED_CONFIG,
  parseSites,
} from "../../domain/contracts/testbed.ts";
import { MIN_POD } from "../../domain/jitsi.ts";
import { formatBytes, formatMillicores } from "../../domain/quantity.ts";
import { MAX_LINK_MBPS } from "../../domain/wae/schema.ts";
import { readSources } from "../support/architecture.ts";

const root = join(import.meta.dirname, "..", "..");
const read = (path: string) => readFileSync(join(root, path), "utf8");

interface ConfigDeclaration {
  type?: string;
  description?: string;
  default?: unknown;
}
const project = parse(read("Pulumi.yaml")) as {
  name: string;
  main: string;
  stackConfigDir: string;
  runtime: { name: string; options: Record<string, unknown> };
  config: Record<string, ConfigDeclaration>;
};

/** The structured keys Pulumi.yaml documents in its comments ("# <key>: <text>", continued by "#   "), by key. */
const documented: Record<string, string> = {};
let current: string | undefined;
for (const line of read("Pulumi.yaml").split("\n")) {
  const start = /^# (\w+): (.*)$/.exec(line);
  if (start !== null) {
    current = start[1]!;
    documented[current] = start[2]!;
  } else if (current !== undefined && line.startsWith("#   ")) {
    documented[current] += ` ${line.slice(4)}`;
  } else {
    current = undefined;
  }
}

describe("Pulumi.yaml", () => {
  it("declares the switch-vaas project, run by tsx from stacks/index.ts, with stack configs in stacks/", () => {
    expect(project).toMatchObject({
      name: "switch-vaas",
      main: "stacks/index.ts",
      stackConfigDir: "stacks",
      runtime: { name: "nodejs", options: { typescript: false, nodeargs: "--import tsx" } },
    });
  });

  it("declares every scalar config key with a type, a description and a default, and documents the structured ones", () => {
    for (const [key, declaration] of Object.entries(project.config)) {
      expect(declaration.description?.length, key).toBeGreaterThan(20);
      // Without a default the CLI requires the key of every stack of the project.
      expect(declaration.type, key).toBeDefined();
      expect(declaration.default, key).toBeDefined();
    }
    for (const [key, text] of Object.entries(documented)) {
      expect(text, key).toMatch(/Defaults to [^.]+\./);
    }
    // A declared default would be every stack's program, the testbed's for a conference stack too.
    expect(project.config.program).toBeUndefined();
  });

  it("declares or documents exactly the config keys of the stack contracts, and only stacks/config.ts reads config", () => {
    expect([...CONFIG_KEYS].sort()).toEqual([...Object.keys(project.config), ...Object.keys(documented)].sort());
    const readers = [...readSources(root)].filter(([, source]) => /new pulumi\.Config\(/.test(source)).map(([path]) => path);
    expect(readers).toEqual(["stacks/config.ts"]);
  });

  it("states the defaults and limits the code computes, as the code computes them", () => {
    const sites = documented[TESTBED_CONFIG.sites] ?? "";
    for (const stated of [
      `nodes (${DEFAULT_NODE_COUNT})`,
      `machineType (${DEFAULT_MACHINE_TYPE})`,
      `diskSizeGb (${DEFAULT_DISK_SIZE_GB})`,
      `diskType (${DEFAULT_DISK_TYPE})`,
      `releaseChannel (${DEFAULT_RELEASE_CHANNEL})`,
      `deletionProtection (${DEFAULT_DELETION_PROTECTION})`,
      `network (${DEFAULT_NETWORK})`,
      `mediaSourceRanges (${JSON.stringify(DEFAULT_MEDIA_SOURCE_RANGES)})`,
      `"${DEFAULT_EXPOSURE.gke}" for gke`,
      `"${DEFAULT_EXPOSURE.kubeconfig}" for kubeconfig`,
      `nodes at most ${MAX_NODES}, vcpuPerNode at most ${MAX_VCPU_PER_NODE}, memoryGiBPerNode at most ${MAX_MEMORY_GIB_PER_NODE}, diskSizeGb at most ${MAX_DISK_SIZE_GB}`,
    ]) {
      expect(sites.replace(/\s+/g, " ")).toContain(stated);
    }
    expect(documented[CDN_POP_CONFIG.pop]?.replace(/\s+/g, " ")).toContain(`linkMbps (${DEFAULT_LINK_MBPS}, at most ${MAX_LINK_MBPS})`);
    expect(documented[CONFERENCE_CONFIG.conference]?.replace(/\s+/g, " ")).toContain(
      `${formatMillicores(MIN_POD.millicores)} and ${formatBytes(MIN_POD.bytes)}, MIN_POD in domain/jitsi.ts`,
    );
  });

  it("keeps the testbedStack default in step with the conference program", () => {
    expect(project.config.testbedStack?.default).toBe(DEFAULT_TESTBED_STACK);
  });

  it("has example stack configs whose program follows from their names, that validate and keep default providers off", () => {
    const stacks = readdirSync(join(root, "stacks")).filter((file) => /^Pulumi\..+\.yaml$/.test(file));
    expect(stacks.sort()).toEqual(["Pulumi.conf-demo.yaml", "Pulumi.conf-local.yaml", "Pulumi.local.yaml", "Pulumi.pop-local.yaml", "Pulumi.pop-vienna.yaml", "Pulumi.testbed.yaml"]);
    for (const file of stacks) {
      const { config } = parse(read(`stacks/${file}`)) as { config: Record<string, unknown> };
      const program = programOfStack(/^Pulumi\.(.+)\.yaml$/.exec(file)![1]!);
      // Where a file names its program, it names the one its stack's name says.
      expect(config["switch-vaas:program"] ?? program, file).toBe(program);
      if (program === "cdn-pop") {
        expect(config["pulumi:disable-default-providers"], file).toContain("docker");
        expect(() => parsePopSpec(config["switch-vaas:pop"], "switch-vaas:pop"), file).not.toThrow();
        continue;
      }
      expect(config["pulumi:disable-default-providers"], file).toContain("kubernetes");
      if (program === "testbed") {
        expect(() => parseSites(config["switch-vaas:sites"] ?? DEFAULT_SITES, "switch-vaas:sites"), file).not.toThrow();
      } else {
        expect(program, file).toBe("conference");
        expect(() => parseConferenceSpec(config["switch-vaas:conference"], "switch-vaas:conference"), file).not.toThrow();
      }
    }
  });
});

describe("package", () => {
  it("holds exactly one copy of @pulumi/pulumi (a second one breaks inline programs)", () => {
    const paths = execFileSync("npm", ["ls", "@pulumi/pulumi", "--all", "--parseable"], { cwd: root, encoding: "utf8" })
      .split("\n")
      .filter((line) => line.endsWith("@pulumi/pulumi"));
    expect(new Set(paths).size).toBe(1);
  });

  it("runs on Node 24.2 and later (import.meta.main), develops on the Node 24 that setup provides, and has the scripts the README names", () => {
    const pkg = JSON.parse(read("package.json")) as { name: string; engines: { node: string }; scripts: Record<string, string> };
    expect(pkg.name).toBe("switch-vaas");
    expect(pkg.engines.node).toBe(">=24.2");
    expect(read(".nvmrc").trim()).toBe("24");
    expect(/^NODE_VERSION=(\d+)\./m.exec(read("scripts/toolchain/versions.env"))?.[1]).toBe("24");
    expect(Object.keys(pkg.scripts)).toEqual(expect.arrayContaining(["build", "typecheck", "lint", "test", "bench", "start", "preview", "switchctl", "cluster"]));
  });
});

describe("CI", () => {
  it("runs exactly the README's test command after a clean install", () => {
    const testCommand = /<!-- test-command -->\s*```sh\n(.+)\n```/.exec(read("README.md"))?.[1];
    expect(testCommand).toBe("npm ci && npm test");
    const steps = read(".ci/run")
      .split("\n")
      .filter((line) => line.trim() !== "" && !line.startsWith("#") && !line.startsWith("set ") && !line.startsWith("cd "));
    expect(steps.at(-1)).toBe(testCommand);
  });
});
