import type { Stack } from "@pulumi/pulumi/automation/index.js";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONFERENCE_PRIORITY_CLASS, DEPLOYER_CLUSTER_ROLE, DEPLOYER_SERVICE_ACCOUNT, SYSTEM_NAMESPACE } from "../../components/testbed/cluster-bootstrap.ts";
import { conferenceName } from "../../domain/contracts/conference.ts";
import { qualifiedKey } from "../../domain/contracts/project.ts";
import { type Adjust, awaitsOf, bounded, e2eStack, e2eWorld, eventually, kubernetes, localTestbedConfig, refusalOf } from "./support.ts";

/**
 * The local engine end to end: `pulumi up`, `refresh` and `destroy` by the real CLI through the
 * Automation API, against a real API server (its admission, quota, node-port allocator and
 * controllers), with the stacks' own programs. One file, in order: the testbed's cluster-wide
 * objects exist once per cluster.
 */

const TESTBED = "local";
/** On a DIY backend the testbed is read as "organization/<project>/<stack>". */
const TESTBED_REFERENCE = `organization/switch-vaas/${TESTBED}`;
const api = () => kubernetes();

function conferenceConfig(id: string) {
  return {
    [qualifiedKey("conference")]: {
      value: JSON.stringify({ id, cluster: "local", expectedParticipants: 4, lastN: -1, simulcast: true, resources: { cpu: "1", memory: "2Gi" } }),
    },
    [qualifiedKey("testbedStack")]: { value: TESTBED_REFERENCE },
  };
}

async function up(stack: Stack) {
  const run = bounded();
  try {
    return await stack.up({ signal: run.signal, onOutput: run.onOutput });
  } catch (error) {
    throw new Error(`pulumi up -s ${stack.name} failed: ${(error as Error).message}\n${run.output()}`);
  }
}

async function destroyAndRemove(stack: Stack): Promise<void> {
  const run = bounded();
  await stack.destroy({ signal: run.signal, onOutput: run.onOutput });
  await stack.workspace.removeStack(stack.name);
}

/** The jvb container's environment and the Service's node ports of a running conference. */
async function bridgeOf(id: string): Promise<{ jvbPort: string | undefined; nodePorts: Record<string, number | undefined> }> {
  const namespace = conferenceName(id);
  const deployment = await api().apps.readNamespacedDeployment({ name: `jitsi-${id}`, namespace });
  const jvb = deployment.spec?.template.spec?.containers.find((container) => container.name === "jvb");
  const service = await api().core.readNamespacedService({ name: `jitsi-${id}`, namespace });
  return {
    jvbPort: jvb?.env?.find((env) => env.name === "JVB_PORT")?.value,
    nodePorts: Object.fromEntries((service.spec?.ports ?? []).map((port) => [port.name ?? "", port.nodePort])),
  };
}

async function available(id: string): Promise<boolean> {
  const deployment = await api().apps.readNamespacedDeployment({ name: `jitsi-${id}`, namespace: conferenceName(id) });
  return deployment.status?.conditions?.some((condition) => condition.type === "Available" && condition.status === "True") ?? false;
}

let testbed: Stack;

beforeAll(async () => {
  testbed = await e2eStack(TESTBED, "testbed", localTestbedConfig());
  await up(testbed);
});

afterAll(async () => {
  await destroyAndRemove(testbed);
});

describe("the local testbed stack, up", () => {
  it("creates the bootstrap objects in the API server", async () => {
    const { core, rbac, scheduling } = api();
    expect((await core.readNamespace({ name: SYSTEM_NAMESPACE })).metadata?.name).toBe(SYSTEM_NAMESPACE);
    expect((await core.readNamespacedServiceAccount({ name: DEPLOYER_SERVICE_ACCOUNT, namespace: SYSTEM_NAMESPACE })).metadata?.name).toBe(DEPLOYER_SERVICE_ACCOUNT);
    const role = await rbac.readClusterRole({ name: DEPLOYER_CLUSTER_ROLE });
    expect(role.rules?.length).toBeGreaterThan(0);
    const bindings = await rbac.listClusterRoleBinding();
    const binding = bindings.items.find((item) => item.roleRef.name === DEPLOYER_CLUSTER_ROLE);
    expect(binding?.subjects).toEqual([expect.objectContaining({ kind: "ServiceAccount", name: DEPLOYER_SERVICE_ACCOUNT, namespace: SYSTEM_NAMESPACE })]);
    expect((await scheduling.readPriorityClass({ name: CONFERENCE_PRIORITY_CLASS })).metadata?.name).toBe(CONFERENCE_PRIORITY_CLASS);
  });
});

describe("conference stacks on the local cluster (node ports)", () => {
  let alpha: Stack;
  let beta: Stack;

  beforeAll(async () => {
    alpha = await e2eStack(conferenceName("e2e-alpha"), "conference", conferenceConfig("e2e-alpha"));
    beta = await e2eStack(conferenceName("e2e-beta"), "conference", conferenceConfig("e2e-beta"));
    await up(alpha);
    await up(beta);
  });

  it("enforce Pod Security restricted on the namespace, and the pod is admitted: the Deployment is Available", async () => {
    const namespace = await api().core.readNamespace({ name: conferenceName("e2e-alpha") });
    expect(namespace.metadata?.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    expect(await available("e2e-alpha")).toBe(true);
    expect(await available("e2e-beta")).toBe(true);
  });

  it("give the bridge the media node port the API server allocated", async () => {
    const { jvbPort, nodePorts } = await bridgeOf("e2e-alpha");
    expect(nodePorts.media).toBeGreaterThanOrEqual(30000);
    expect(jvbPort).toBe(String(nodePorts.media));
    const outputs = await alpha.outputs();
    expect(outputs.mediaEndpoint?.value).toBe(`udp://127.0.0.1:${nodePorts.media}`);
  });

  it("share no names or ports between two conferences", async () => {
    const [a, b] = await Promise.all([bridgeOf("e2e-alpha"), bridgeOf("e2e-beta")]);
    const ports = (bridge: typeof a) => Object.values(bridge.nodePorts);
    expect(ports(a).filter((port) => ports(b).includes(port))).toEqual([]);
    const names = async (id: string) => {
      const namespace = conferenceName(id);
      const [secrets, configMaps, services] = await Promise.all([
        api().core.listNamespacedSecret({ namespace }),
        api().core.listNamespacedConfigMap({ namespace }),
        api().core.listNamespacedService({ namespace }),
      ]);
      return [...secrets.items, ...configMaps.items, ...services.items].map((item) => item.metadata?.name).filter((name) => name !== "kube-root-ca.crt");
    };
    const [namesA, namesB] = await Promise.all([names("e2e-alpha"), names("e2e-beta")]);
    expect(namesA.length).toBeGreaterThan(0);
    expect(namesA.filter((name) => namesB.includes(name))).toEqual([]);
  });

  it("refuse a privileged pod in a conference namespace: the policy is enforced by the API server", async () => {
    const refusal = await refusalOf(
      api().core.createNamespacedPod({
        namespace: conferenceName("e2e-alpha"),
        body: {
          metadata: { name: "intruder" },
          spec: { containers: [{ name: "intruder", image: "busybox", securityContext: { privileged: true } }] },
        },
      }),
    );
    expect(refusal.status).toBe(403);
    expect(refusal.message).toContain('violates PodSecurity "restricted:latest"');
  });

  it("keep their passwords across another up, which changes nothing", async () => {
    const secret = () => api().core.readNamespacedSecret({ name: "jitsi-auth-e2e-alpha", namespace: conferenceName("e2e-alpha") });
    const before = (await secret()).data;
    const again = await up(alpha);
    expect(Object.keys(again.summary.resourceChanges ?? {})).toEqual(["same"]);
    expect((await secret()).data).toEqual(before);
    expect(Object.keys(before ?? {}).sort()).toEqual(["JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD"]);
  });

  it("report a Deployment deleted behind Pulumi's back on refresh, and up restores it", async () => {
    await api().apps.deleteNamespacedDeployment({ name: "jitsi-e2e-beta", namespace: conferenceName("e2e-beta") });
    await eventually("the Deployment to be gone", async () =>
      (await refusalOf(api().apps.readNamespacedDeployment({ name: "jitsi-e2e-beta", namespace: conferenceName("e2e-beta") }))).status === 404 ? true : undefined,
    );
    const run = bounded();
    const refreshed = await beta.refresh({ signal: run.signal, onOutput: run.onOutput });
    expect(refreshed.summary.resourceChanges?.delete).toBe(1);
    const restored = await up(beta);
    expect(restored.summary.resourceChanges?.create).toBe(1);
    expect(await available("e2e-beta")).toBe(true);
  });

  it("leave no namespace, object or stack behind once destroyed and removed", async () => {
    await destroyAndRemove(alpha);
    await destroyAndRemove(beta);
    for (const id of ["e2e-alpha", "e2e-beta"]) {
      await eventually(`namespace ${conferenceName(id)} to be deleted`, async () =>
        (await refusalOf(api().core.readNamespace({ name: conferenceName(id) }))).status === 404 ? true : undefined,
      );
    }
    const stacks = await testbed.workspace.listStacks();
    expect(stacks.map((stack) => stack.name)).toEqual([TESTBED]);
    const stateDir = fileURLToPath(`${e2eWorld().backendUrl}/.pulumi/stacks/switch-vaas`);
    // The backend keeps a removed stack's last checkpoint as <stack>.json.bak; the stack itself is gone.
    expect(readdirSync(stateDir).filter((file) => file.startsWith("conf-") && file.endsWith(".json"))).toEqual([]);
  });
});

/** Long enough for the ReplicaSet controller to try and be refused; the Deployment can never become Available. */
const REFUSED_POD_WAIT_SECONDS = 20;

describe("the negative control", () => {
  /** The bridge asks to run privileged: what a conference must never need. */
  const privilegedBridge: Adjust = (args) => {
    if (args.type !== "kubernetes:apps/v1:Deployment") {
      return undefined;
    }
    const props = args.props as { spec: { template: { spec: { containers: { name: string; securityContext?: object }[] } } } };
    for (const container of props.spec.template.spec.containers) {
      if (container.name === "jvb") {
        container.securityContext = { ...container.securityContext, privileged: true, allowPrivilegeEscalation: true };
      }
    }
    return { props: args.props, opts: args.opts };
  };

  it("fails the up of a conference whose pod violates restricted, with the API server's reason", async () => {
    const stack = await e2eStack(conferenceName("e2e-bad"), "conference", conferenceConfig("e2e-bad"), { adjust: [awaitsOf(REFUSED_POD_WAIT_SECONDS), privilegedBridge] });
    try {
      await expect(up(stack)).rejects.toThrow(/jitsi-e2e-bad/);
      const replicaSets = await api().apps.listNamespacedReplicaSet({ namespace: conferenceName("e2e-bad") });
      const failure = replicaSets.items.flatMap((set) => set.status?.conditions ?? []).find((condition) => condition.type === "ReplicaFailure");
      expect(failure?.message).toContain('violates PodSecurity "restricted:latest": privileged');
      expect(await available("e2e-bad")).toBe(false);
    } finally {
      await destroyAndRemove(stack);
    }
  });
});
