import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { INSTANCE_MANAGER_MAIN, PENDING_ARROWS, SERVICE_APP, SERVICE_SCHEMAS, arrowViolations, isPending, readSources } from "../support/architecture.ts";

const root = join(import.meta.dirname, "..", "..");
const agentPackage = JSON.parse(readFileSync(join(root, "automation", "instance-manager", "package.json"), "utf8")) as { dependencies: Record<string, string> };
const agentDependencies = Object.keys(agentPackage.dependencies);

/** A tree that keeps every arrow: the fixtures below each add one file that breaks one. */
const healthy: Record<string, string> = {
  "runtime/node-version.ts": 'import { readFileSync } from "node:fs";',
  "domain/errors.ts": "export class InvalidArgumentsError extends Error {}",
  "domain/wae/model.ts": 'import { z } from "zod";\nimport { InvalidArgumentsError } from "../errors.ts";',
  "components/testbed/testbed.ts": 'import * as pulumi from "@pulumi/pulumi";\nimport type { Site } from "../../domain/contracts/testbed.ts";',
  "stacks/testbed.ts": 'import { Testbed } from "../components/testbed/testbed.ts";',
  [INSTANCE_MANAGER_MAIN]: 'import { readFile } from "node:fs/promises";\nimport { ROLES } from "../../domain/wae/model.ts";\nimport { z } from "zod";',
  "test/unit/a.test.ts": 'import { helper } from "../support/helper.ts";',
  [SERVICE_SCHEMAS]: 'import { z } from "zod";\nimport { CONFERENCE_STATES } from "../../domain/conference-lifecycle.ts";',
  "automation/service/plugins/problems.ts": 'import { problem } from "../schemas.ts";\nimport { isStoreUnavailable } from "../../store/store.ts";',
  "automation/service/routes/clusters.ts": 'import { problemResponses } from "../plugins/problems.ts";\nimport { clusterList } from "../schemas.ts";',
  [SERVICE_APP]: 'import { problems } from "./plugins/problems.ts";\nimport { clusterRoutes } from "./routes/clusters.ts";',
  "test/service/clusters.test.ts": 'import { clusterRoutes } from "../../automation/service/routes/clusters.ts";',
};

const SCHEMAS_LEAF = "schemas.ts imports only domain/ and packages: API shapes are a leaf, importing nothing of the store or the service";
const ROUTES_FROM_APP = "only app.ts imports a route module: routes share plugins/ and schemas.ts, never one another";

const broken: [string, Record<string, string>, string][] = [
  ["domain importing Pulumi", { "domain/x.ts": 'import * as pulumi from "@pulumi/pulumi";' }, 'domain/x.ts imports @pulumi/pulumi: domain/ imports only itself and zod, ipaddr.js, node:crypto'],
  ["domain importing the file system", { "domain/x.ts": 'import { readFileSync } from "node:fs";' }, "domain/x.ts imports node:fs: domain/ imports only itself and zod, ipaddr.js, node:crypto"],
  ["domain importing components, by a dynamic import", { "domain/x.ts": 'const m = await import("../components/testbed/testbed.ts");' }, "domain/x.ts imports ../components/testbed/testbed.ts: domain/ imports only itself and zod, ipaddr.js, node:crypto"],
  ["domain reading the clock", { "domain/x.ts": "export const t = () => Date.now();" }, "domain/x.ts uses Date.now: domain/ is pure and throws only the errors of domain/errors.ts"],
  ["domain drawing random numbers", { "domain/x.ts": "export const r = Math.random();" }, "domain/x.ts uses Math.random: domain/ is pure and throws only the errors of domain/errors.ts"],
  ["domain throwing a plain Error", { "domain/x.ts": 'throw new Error("no");' }, "domain/x.ts uses new Error(: domain/ is pure and throws only the errors of domain/errors.ts"],
  ["a component importing automation, type-only", { "components/x.ts": 'import type { Engine } from "../automation/engine/offline.ts";' }, "components/x.ts imports ../automation/engine/offline.ts: components/ never import automation/ or stacks/"],
  ["a component importing a stack", { "components/cdn-pop/x.ts": 'export { default } from "../../stacks/cdn-pop.ts";' }, "components/cdn-pop/x.ts imports ../../stacks/cdn-pop.ts: components/ never import automation/ or stacks/"],
  ["a stack importing automation", { "stacks/x.ts": 'import { highsSolver } from "../automation/solver/highs.ts";' }, "stacks/x.ts imports ../automation/solver/highs.ts: stacks/ never import automation/"],
  ["the runtime check importing a package", { "runtime/x.ts": 'import { satisfies } from "semver";' }, "runtime/x.ts imports semver: runtime/ imports only Node's builtins: every entry point imports it, stacks/index.ts too"],
  ["the runtime check importing automation", { "runtime/x.ts": 'import { UsageError } from "../automation/cli/command-line.ts";' }, "runtime/x.ts imports ../automation/cli/command-line.ts: runtime/ imports only Node's builtins: every entry point imports it, stacks/index.ts too"],
  ["product code importing a test helper", { "automation/cli/x.ts": 'import { outputOf } from "../../test/support/pulumi.ts";' }, "automation/cli/x.ts imports ../../test/support/pulumi.ts: nothing imports test/"],
  [
    "the instance manager reaching into components",
    { [INSTANCE_MANAGER_MAIN]: 'import { ROLES } from "../../components/cdn-pop/images.ts";' },
    "automation/instance-manager/main.ts imports ../../components/cdn-pop/images.ts: the instance manager imports only domain/ and itself",
  ],
  [
    "the instance manager needing a package its image lacks, through domain/",
    { "domain/wae/model.ts": 'import ipaddr from "ipaddr.js";' },
    `domain/wae/model.ts imports ipaddr.js: the instance manager's image has only its own dependencies (${agentDependencies.join(", ")})`,
  ],
  ["the service's schemas importing the store's records", { [SERVICE_SCHEMAS]: 'import { decisionRecord } from "../store/records.ts";' }, `${SERVICE_SCHEMAS} imports ../store/records.ts: ${SCHEMAS_LEAF}`],
  ["the service's schemas importing the store, type-only", { [SERVICE_SCHEMAS]: 'import type { Store } from "../store/store.ts";' }, `${SERVICE_SCHEMAS} imports ../store/store.ts: ${SCHEMAS_LEAF}`],
  ["the service's schemas importing a plugin", { [SERVICE_SCHEMAS]: 'import { problemBody } from "./plugins/problems.ts";' }, `${SERVICE_SCHEMAS} imports ./plugins/problems.ts: ${SCHEMAS_LEAF}`],
  [
    "a plugin importing a route module",
    { "automation/service/plugins/auth.ts": 'import { healthRoutes } from "../routes/health.ts";' },
    `automation/service/plugins/auth.ts imports ../routes/health.ts: ${ROUTES_FROM_APP}`,
  ],
  ["a route module importing another", { "automation/service/routes/placements.ts": 'import { viewOf } from "./conferences.ts";' }, `automation/service/routes/placements.ts imports ./conferences.ts: ${ROUTES_FROM_APP}`],
  ["the server registering a route module itself", { "automation/service/server.ts": 'import { healthRoutes } from "./routes/health.ts";' }, `automation/service/server.ts imports ./routes/health.ts: ${ROUTES_FROM_APP}`],
];

describe("the arrows of ARCHITECTURE.md", () => {
  it("hold in this tree, but for the pending ones", () => {
    expect(arrowViolations(readSources(root), agentDependencies, PENDING_ARROWS)).toEqual([]);
  });

  it.each(PENDING_ARROWS)("are still broken where pending: $file imports $specifier (until $until)", (arrow) => {
    // A pending arrow that holds now leaves the list: it would hide the next import to break it.
    expect(arrowViolations(readSources(root), agentDependencies).filter((violation) => isPending(violation, [arrow]))).toHaveLength(1);
  });

  it("hold in the healthy fixture", () => {
    expect(arrowViolations(new Map(Object.entries(healthy)), agentDependencies)).toEqual([]);
  });

  it.each(broken)("catch %s", (_case, files, violation) => {
    expect(arrowViolations(new Map(Object.entries({ ...healthy, ...files })), agentDependencies)).toEqual([violation]);
  });
});
