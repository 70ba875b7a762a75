import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { type OfflineResult, type Registration, UNKNOWN_PLACEHOLDER, displayInputs, displayOutputs, isSecretEnvelope, providerName } from "../../automation/engine/offline.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../../domain/quantity.ts";
import { type ConferenceStackOutputs, LOAD_BALANCER_IP, TESTBED_CLUSTERS, conferenceMocks, nodePortAllocator, runConference } from "../support/conference.ts";
import { isKubernetesObject, validateKubernetesObject } from "../support/kubernetes-schema.ts";
import { ofType, outputOf } from "../support/pulumi.ts";

type Env = { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } };
type ContainerSpec = {
  name: string;
  image: string;
  env: Env[];
  ports: { name: string; containerPort: number; protocol: string }[];
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
  startupProbe: Record<string, unknown>;
  readinessProbe: Record<string, unknown>;
  livenessProbe: Record<string, unknown>;
};
type PodSpec = { containers: ContainerSpec[]; volumes: Record<string, unknown>[]; securityContext: Record<string, unknown> } & Record<string, unknown>;

const base = { expectedParticipants: 20, lastN: 5, simulcast: true, resources: { cpu: "2", memory: "3Gi" } };
const CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

type Run = OfflineResult<ConferenceStackOutputs>;

/** The XMPP passwords in a conference's Secret, as the cluster would receive them. */
function passwordsOf(run: Run): string[] {
  const secret = ofType(run.registrations, "kubernetes:core/v1:Secret").find((s) => (s.inputs.metadata as { name: string }).name.startsWith("jitsi-auth-"))!;
  const reveal = (value: unknown) => (isSecretEnvelope(value) ? value.value : value);
  const data = reveal(secret.inputs.data) as Record<string, unknown>;
  return ["JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD"].map((key) => Buffer.from(String(reveal(data[key])), "base64").toString());
}
let loadBalancer: Run;
let nodePortByIp: Run;
let nodePortByName: Run;
let withTls: Run;
let pair: [Run, Run];

beforeAll(async () => {
  loadBalancer = await runConference({ ...base, id: "physics-101", cluster: "gcp-europe-west1" });
  nodePortByIp = await runConference({ ...base, id: "seminar", cluster: "arnes-ljubljana", lastN: -1, simulcast: false });
  nodePortByName = await runConference({ ...base, id: "standup", cluster: "flexiops-edinburgh" });
  withTls = await runConference({ ...base, id: "board", cluster: "gcp-europe-west1" }, { tls: { domain: "conf.example.org", certificate: CERTIFICATE, key: KEY } });
  // Two conferences in one cluster: one node-port allocator, as one API server has.
  const cluster = nodePortAllocator();
  pair = [
    await runConference({ ...base, id: "alpha", cluster: "arnes-ljubljana" }, { mocks: conferenceMocks(cluster) }),
    await runConference({ ...base, id: "beta", cluster: "arnes-ljubljana" }, { mocks: conferenceMocks(cluster) }),
  ];
});

function one(run: Run, type: string): Registration {
  const found = ofType(run.registrations, type);
  expect(found, type).toHaveLength(1);
  return found[0]!;
}
function podOf(run: Run): PodSpec {
  return (one(run, "kubernetes:apps/v1:Deployment").inputs as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}
function container(run: Run, name: string): ContainerSpec {
  const found = podOf(run).containers.find((candidate) => candidate.name === name);
  expect(found, name).toBeDefined();
  return found!;
}
function envOf(run: Run, name: string): Record<string, string | Env["valueFrom"]> {
  return Object.fromEntries(container(run, name).env.map((variable) => [variable.name, variable.value ?? variable.valueFrom]));
}
describe.each([
  ["load balancer", () => loadBalancer, "gcp-europe-west1"],
  ["node port", () => nodePortByIp, "arnes-ljubljana"],
])("a conference behind a %s", (_mode, run, cluster) => {
  it("runs web, prosody, jicofo and jvb from ghcr.io/jitsi with one pinned tag", () => {
    expect(podOf(run()).containers.map((c) => c.image)).toEqual([
      "ghcr.io/jitsi/web:stable-11146-2",
      "ghcr.io/jitsi/prosody:stable-11146-2",
      "ghcr.io/jitsi/jicofo:stable-11146-2",
      "ghcr.io/jitsi/jvb:stable-11146-2",
    ]);
  });

  it("gives every container the same XMPP domains, the s6 variable and TZ", () => {
    for (const name of ["web", "prosody", "jicofo", "jvb"]) {
      expect(envOf(run(), name), name).toMatchObject({
        XMPP_DOMAIN: "meet.jitsi",
        XMPP_AUTH_DOMAIN: "auth.meet.jitsi",
        XMPP_MUC_DOMAIN: "muc.meet.jitsi",
        XMPP_INTERNAL_MUC_DOMAIN: "internal-muc.meet.jitsi",
        TZ: "UTC",
        S6_YES_I_WANT_A_WORLD_WRITABLE_RUN_BECAUSE_KUBERNETES: "1",
      });
    }
  });

  it("addresses prosody over the pod's loopback and keeps the brewery and websocket settings in step", () => {
    expect(envOf(run(), "web")).toMatchObject({ XMPP_BOSH_URL_BASE: "http://127.0.0.1:5280", ENABLE_XMPP_WEBSOCKET: "1" });
    expect(envOf(run(), "prosody")).toMatchObject({ ENABLE_XMPP_WEBSOCKET: "1" });
    expect(envOf(run(), "jicofo")).toMatchObject({ XMPP_SERVER: "127.0.0.1", JVB_BREWERY_MUC: "jvbbrewery", JICOFO_ENABLE_REST: "1" });
    expect(envOf(run(), "jvb")).toMatchObject({ XMPP_SERVER: "127.0.0.1", JVB_BREWERY_MUC: "jvbbrewery" });
    expect(envOf(run(), "web").XMPP_SERVER).toBeUndefined();
  });

  it("puts each password on exactly the two containers that need it, from the conference's Secret", () => {
    const secret = one(run(), "kubernetes:core/v1:Secret");
    const secretName = (secret.inputs.metadata as { name: string }).name;
    const ref = (key: string) => ({ secretKeyRef: { name: secretName, key } });
    const holders = (key: string) => ["web", "prosody", "jicofo", "jvb"].filter((name) => key in envOf(run(), name));
    expect(holders("JICOFO_AUTH_PASSWORD")).toEqual(["prosody", "jicofo"]);
    expect(holders("JVB_AUTH_PASSWORD")).toEqual(["prosody", "jvb"]);
    expect(envOf(run(), "prosody")).toMatchObject({ JICOFO_AUTH_PASSWORD: ref("JICOFO_AUTH_PASSWORD"), JVB_AUTH_PASSWORD: ref("JVB_AUTH_PASSWORD") });
    expect(envOf(run(), "jicofo").JICOFO_AUTH_PASSWORD).toEqual(ref("JICOFO_AUTH_PASSWORD"));
    expect(envOf(run(), "jvb").JVB_AUTH_PASSWORD).toEqual(ref("JVB_AUTH_PASSWORD"));
    expect(envOf(run(), "jicofo").JICOFO_COMPONENT_SECRET).toBeUndefined();
    const data = secret.inputs.data;
    expect(isSecretEnvelope(data) || Object.values(data as object).every(isSecretEnvelope)).toBe(true);
  });

  it("generates the two passwords per conference, 32 letters and digits, each its own, with no provider plugin", () => {
    const [jicofo, jvb] = passwordsOf(run());
    expect(jicofo).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(jvb).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(jicofo).not.toBe(jvb);
    expect(run().registrations.filter((registration) => registration.type.startsWith("random:"))).toEqual([]);
  });

  it("serves the web over https at a PUBLIC_URL given to web and prosody", () => {
    const url = envOf(run(), "web").PUBLIC_URL as string;
    expect(url).toMatch(/^https:\/\/[^/]+$/);
    expect(envOf(run(), "prosody").PUBLIC_URL).toBe(url);
    expect(envOf(run(), "web")).toMatchObject({ DISABLE_HTTPS: "0" });
  });

  it("caps the room at the expected participants", () => {
    expect(envOf(run(), "prosody").MAX_PARTICIPANTS).toBe("20");
  });

  it("runs every container rootless, read-only, without privilege escalation or capabilities", () => {
    expect(podOf(run()).securityContext).toEqual({
      runAsUser: 1000,
      runAsGroup: 1000,
      runAsNonRoot: true,
      fsGroup: 1000,
      seccompProfile: { type: "RuntimeDefault" },
    });
    for (const c of podOf(run()).containers) {
      expect(c.securityContext, c.name).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ["ALL"] },
      });
    }
  });

  it("gives each container its own /run and /tmp, prosody its data directory and web its certificate storage", () => {
    for (const c of podOf(run()).containers) {
      expect(c.volumeMounts.filter((m) => m.mountPath === "/run" || m.mountPath === "/tmp"), c.name).toEqual([
        { name: `${c.name}-run`, mountPath: "/run" },
        { name: `${c.name}-tmp`, mountPath: "/tmp" },
      ]);
    }
    expect(container(run(), "prosody").volumeMounts).toContainEqual({ name: "prosody-data", mountPath: "/var/lib/prosody" });
    expect(container(run(), "web").volumeMounts).toContainEqual({ name: "web-storage", mountPath: "/storage" });
    const emptyDirs = podOf(run()).volumes.filter((v) => "emptyDir" in v).map((v) => v.name);
    expect(emptyDirs.sort()).toEqual(
      ["jicofo-run", "jicofo-tmp", "jvb-run", "jvb-tmp", "prosody-data", "prosody-run", "prosody-tmp", "web-run", "web-storage", "web-tmp"].sort(),
    );
  });

  it("probes each container the way its current image answers", () => {
    const handler = (name: string) => {
      const { startupProbe, readinessProbe, livenessProbe } = container(run(), name);
      const strip = ({ periodSeconds: _p, failureThreshold: _f, timeoutSeconds: _t, ...rest }: Record<string, unknown>) => rest;
      expect(strip(startupProbe)).toEqual(strip(readinessProbe));
      expect(strip(livenessProbe)).toEqual(strip(readinessProbe));
      return strip(readinessProbe);
    };
    expect(handler("web")).toEqual({ httpGet: { path: "/", port: 8000 } });
    expect(handler("prosody")).toEqual({ exec: { command: ["/usr/local/bin/healthcheck.sh"] } });
    expect(handler("jicofo")).toEqual({ tcpSocket: { port: 8888 } });
    expect(handler("jvb")).toEqual({ httpGet: { path: "/about/health", port: 8080 } });
  });

  it("gives each container requests equal to limits, together exactly the conference's size", () => {
    let millicores = 0;
    let bytes = 0;
    for (const c of podOf(run()).containers) {
      expect(c.resources.requests, c.name).toEqual(c.resources.limits);
      millicores += parseCpuMillicores(c.resources.limits.cpu!)!;
      bytes += parseMemoryBytes(c.resources.limits.memory!)!;
    }
    expect(millicores).toBe(2000);
    expect(bytes).toBe(3 * 1024 ** 3);
  });

  it("keeps the JVM heaps below their containers' limits", () => {
    const heapBytes = (value: string) => Number(value.replace(/m$/, "")) * 1024 * 1024;
    expect(heapBytes(envOf(run(), "jicofo").JICOFO_MAX_MEMORY as string)).toBeLessThan(parseMemoryBytes(container(run(), "jicofo").resources.limits.memory!)!);
    expect(heapBytes(envOf(run(), "jvb").VIDEOBRIDGE_MAX_MEMORY as string)).toBeLessThan(parseMemoryBytes(container(run(), "jvb").resources.limits.memory!)!);
  });

  it("runs one replica, recreated rather than rolled, at the conference priority", () => {
    const deployment = one(run(), "kubernetes:apps/v1:Deployment").inputs as { spec: Record<string, unknown> };
    expect(deployment.spec).toMatchObject({ replicas: 1, strategy: { type: "Recreate" } });
    expect(podOf(run())).toMatchObject({ priorityClassName: "switch-vaas-conference", automountServiceAccountToken: false, enableServiceLinks: false });
  });

  it("gives the conference its own labelled namespace, quota and limits of its size", () => {
    const namespace = one(run(), "kubernetes:core/v1:Namespace").inputs as { metadata: { name: string; labels: Record<string, string> } };
    expect(namespace.metadata.labels).toEqual({
      "switch-vaas/conference": namespace.metadata.name.replace(/^conf-/, ""),
      "app.kubernetes.io/managed-by": "switch-vaas",
      "pod-security.kubernetes.io/enforce": "restricted",
    });
    // A stop waits for the Deployment's deletion, not for the namespace controller's 5 s grace.
    expect((namespace.metadata as { annotations?: Record<string, string> }).annotations).toEqual({
      "pulumi.com/patchFieldManager": "switch-vaas",
      "pulumi.com/skipAwait": "true",
    });
    const quota = one(run(), "kubernetes:core/v1:ResourceQuota").inputs as { spec: { hard: Record<string, string> } };
    expect(quota.spec.hard).toMatchObject({ "requests.cpu": "2", "limits.cpu": "2", "requests.memory": "3Gi", "limits.memory": "3Gi", pods: "1" });
    const limits = one(run(), "kubernetes:core/v1:LimitRange").inputs as { spec: { limits: unknown[] } };
    expect(limits.spec.limits).toEqual([
      { type: "Pod", max: { cpu: "2", memory: "3Gi" } },
      { type: "Container", max: { cpu: "2", memory: "3Gi" } },
    ]);
  });

  it("denies all ingress but the web port and the media port, from outside", () => {
    const policies = ofType(run().registrations, "kubernetes:networking.k8s.io/v1:NetworkPolicy").map((p) => p.inputs.spec);
    const podLabels = (one(run(), "kubernetes:apps/v1:Deployment").inputs as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec
      .template.metadata.labels;
    expect(podLabels["app.kubernetes.io/name"]).toBe("jitsi-meet");
    expect(policies).toEqual([
      { podSelector: {}, policyTypes: ["Ingress"] },
      {
        podSelector: { matchLabels: podLabels },
        policyTypes: ["Ingress"],
        ingress: [
          {
            from: [{ ipBlock: { cidr: "0.0.0.0/0" } }],
            ports: [
              { protocol: "TCP", port: "https" },
              { protocol: "UDP", port: "media" },
            ],
          },
        ],
      },
    ]);
    // The named ports are the web container's HTTPS port and the bridge's media port.
    expect(container(run(), "web").ports).toContainEqual({ name: "https", containerPort: 8443, protocol: "TCP" });
    expect(container(run(), "jvb").ports).toContainEqual({ name: "media", containerPort: Number(envOf(run(), "jvb").JVB_PORT), protocol: "UDP" });
  });

  it("applies last-N and simulcast on the client and on the bridge, from a ConfigMap", () => {
    const configMap = one(run(), "kubernetes:core/v1:ConfigMap").inputs as { metadata: { name: string }; data: Record<string, string> };
    const { lastN, simulcast } = run() === nodePortByIp ? { lastN: -1, simulcast: false } : { lastN: 5, simulcast: true };
    expect(configMap.data["custom-config.js"]).toContain(`config.channelLastN = ${lastN};`);
    expect(configMap.data["custom-config.js"]).toContain(`config.disableSimulcast = ${!simulcast};`);
    expect(configMap.data["custom-jvb.conf"]).toContain(`videobridge.cc.jvb-last-n = ${lastN}`);
    expect(container(run(), "web").volumeMounts).toContainEqual({ name: "config", mountPath: "/config/custom-config.js", subPath: "custom-config.js", readOnly: true });
    expect(container(run(), "jvb").volumeMounts).toContainEqual({ name: "config", mountPath: "/config/custom-jvb.conf", subPath: "custom-jvb.conf", readOnly: true });
    expect(podOf(run()).volumes).toContainEqual({ name: "config", configMap: { name: configMap.metadata.name } });
  });

  it("creates everything through a provider built from the testbed stack's kubeconfig for the cluster", () => {
    const reference = one(run(), "pulumi:pulumi:StackReference");
    expect(reference.inputs.name).toBe("organization/switch-vaas/testbed");
    const provider = one(run(), "pulumi:providers:kubernetes");
    expect(isSecretEnvelope(provider.inputs.kubeconfig)).toBe(true);
    expect((provider.inputs.kubeconfig as { value: string }).value).toBe(TESTBED_CLUSTERS[cluster as keyof typeof TESTBED_CLUSTERS].kubeconfig);
    const objects = run().registrations.filter(isKubernetesObject);
    expect(objects.length).toBe(9);
    expect(objects.every((object) => providerName(object) === provider.name)).toBe(true);
  });

  it("applies every object as one server-side-apply field manager, so an object adopted after an interrupted create updates without conflicts", () => {
    const objects = run().registrations.filter(isKubernetesObject);
    const managers = objects.map((object) => (object.inputs.metadata as { annotations?: Record<string, string> }).annotations?.["pulumi.com/patchFieldManager"]);
    expect(managers).toEqual(objects.map(() => "switch-vaas"));
  });

  it("outputs its namespace and cluster", async () => {
    expect(run().outputs.namespace).toMatch(/^conf-/);
    expect(run().outputs.cluster).toBe(cluster);
    expect(await outputOf(run().outputs.url as pulumi.Output<string>)).toBe(envOf(run(), "web").PUBLIC_URL);
  });

  it("creates only Kubernetes objects that validate against the Kubernetes schemas", async () => {
    for (const object of run().registrations.filter(isKubernetesObject)) {
      await validateKubernetesObject(object);
    }
  });
});

describe("media behind a load balancer", () => {
  it("carries web (TCP 443) and media (UDP 10000) on one load balancer address, with client addresses kept", () => {
    const service = one(loadBalancer, "kubernetes:core/v1:Service").inputs as { spec: Record<string, unknown> };
    expect(service.spec).toMatchObject({
      type: "LoadBalancer",
      externalTrafficPolicy: "Local",
      ports: [
        { name: "https", protocol: "TCP", port: 443, targetPort: "https" },
        { name: "media", protocol: "UDP", port: 10000, targetPort: "media" },
      ],
    });
  });

  it("makes the bridge listen on the port clients reach and advertise the load balancer's IP, without STUN", () => {
    expect(envOf(loadBalancer, "jvb")).toMatchObject({ JVB_PORT: "10000", JVB_ADVERTISE_IPS: LOAD_BALANCER_IP, JVB_DISABLE_STUN: "true" });
    expect(container(loadBalancer, "jvb").ports).toContainEqual({ name: "media", containerPort: 10000, protocol: "UDP" });
  });

  it("outputs the load balancer's https URL and media endpoint", async () => {
    expect(await outputOf(loadBalancer.outputs.url as pulumi.Output<string>)).toBe(`https://${LOAD_BALANCER_IP}`);
    expect(await outputOf(loadBalancer.outputs.mediaEndpoint as pulumi.Output<string>)).toBe(`udp://${LOAD_BALANCER_IP}:10000`);
  });

  it("allows the one load balancer in its quota", () => {
    const quota = one(loadBalancer, "kubernetes:core/v1:ResourceQuota").inputs as { spec: { hard: Record<string, string> } };
    expect(quota.spec.hard["services.loadbalancers"]).toBe("1");
  });
});

describe("media through node ports", () => {
  it("exposes web and media as node ports reachable through any node", () => {
    const service = one(nodePortByIp, "kubernetes:core/v1:Service").inputs as { spec: Record<string, unknown> };
    expect(service.spec).toMatchObject({ type: "NodePort", externalTrafficPolicy: "Cluster" });
    const quota = one(nodePortByIp, "kubernetes:core/v1:ResourceQuota").inputs as { spec: { hard: Record<string, string> } };
    expect(quota.spec.hard["services.loadbalancers"]).toBe("0");
  });

  it("takes the Service as the API server answers its create, without the provider's wait for endpoints; a load balancer's keeps it, for its address", () => {
    const annotationsOf = (run: Run) => (one(run, "kubernetes:core/v1:Service").inputs as { metadata: { annotations: Record<string, string> } }).metadata.annotations;
    expect(annotationsOf(nodePortByIp)).toEqual({ "pulumi.com/patchFieldManager": "switch-vaas", "pulumi.com/skipAwait": "true" });
    expect(annotationsOf(loadBalancer)).toEqual({ "pulumi.com/patchFieldManager": "switch-vaas" });
  });

  it("makes the bridge listen on its allocated media node port and advertise the node address it was given", async () => {
    const jvb = envOf(nodePortByIp, "jvb");
    const mediaEndpoint = await outputOf(nodePortByIp.outputs.mediaEndpoint as pulumi.Output<string>);
    expect(mediaEndpoint).toBe(`udp://193.2.1.10:${jvb.JVB_PORT as string}`);
    expect(Number(jvb.JVB_PORT)).toBeGreaterThanOrEqual(30000);
    expect(jvb).toMatchObject({ JVB_ADVERTISE_IPS: "193.2.1.10", JVB_DISABLE_STUN: "true" });
    expect(container(nodePortByIp, "jvb").ports).toContainEqual({ name: "media", containerPort: Number(jvb.JVB_PORT), protocol: "UDP" });
  });

  it("serves the web at the node address and the web node port", async () => {
    const url = await outputOf(nodePortByIp.outputs.url as pulumi.Output<string>);
    expect(url).toMatch(/^https:\/\/193\.2\.1\.10:3\d{4}$/);
    expect(Number(new URL(url).port)).not.toBe(Number(envOf(nodePortByIp, "jvb").JVB_PORT));
  });

  it("lets STUN find the node's address when the testbed gives a name rather than an IP", () => {
    expect(envOf(nodePortByName, "jvb")).toMatchObject({ JVB_ADVERTISE_IPS: "", JVB_DISABLE_STUN: "false" });
  });

  it("previews a new conference before its node ports exist, showing them as not known yet", async () => {
    // The engine's preview (its progress total) and `pulumi preview` of a new conference: the
    // provider cannot dry-run a Service whose namespace the same update creates.
    const preview = await runConference({ ...base, id: "fresh", cluster: "arnes-ljubljana" }, { mocks: conferenceMocks("not yet"), preview: true });
    expect(displayInputs(envOf(preview, "jvb").JVB_PORT)).toBe(UNKNOWN_PLACEHOLDER);
    expect(await displayOutputs(preview.outputs.mediaEndpoint)).toBe(UNKNOWN_PLACEHOLDER);
  });
});

describe("a conference with a certificate for its domain", () => {
  it("is served at https://<id>.<domain>, published for external-dns", async () => {
    expect(await outputOf(withTls.outputs.url as pulumi.Output<string>)).toBe("https://board.conf.example.org");
    const service = one(withTls, "kubernetes:core/v1:Service").inputs as { metadata: { annotations: Record<string, string> } };
    expect(service.metadata.annotations).toEqual({
      "pulumi.com/patchFieldManager": "switch-vaas",
      "external-dns.alpha.kubernetes.io/hostname": "board.conf.example.org",
    });
  });

  it("mounts the certificate where the web image looks for one, from a secret TLS Secret", () => {
    const tls = ofType(withTls.registrations, "kubernetes:core/v1:Secret").find((s) => s.inputs.type === "kubernetes.io/tls");
    expect(tls).toBeDefined();
    const data = tls!.inputs.stringData as Record<string, unknown>;
    expect(isSecretEnvelope(data) || (isSecretEnvelope(data["tls.crt"]) && isSecretEnvelope(data["tls.key"]))).toBe(true);
    expect(container(withTls, "web").volumeMounts).toContainEqual({ name: "tls", mountPath: "/config/keys", readOnly: true });
    expect(podOf(withTls).volumes).toContainEqual({
      name: "tls",
      secret: {
        secretName: (tls!.inputs.metadata as { name: string }).name,
        defaultMode: 0o440,
        items: [
          { key: "tls.crt", path: "cert.crt" },
          { key: "tls.key", path: "cert.key" },
        ],
      },
    });
  });

  it("has no certificate mount without one (the web container makes its own)", () => {
    expect(container(loadBalancer, "web").volumeMounts.map((m) => m.name)).not.toContain("tls");
    expect(ofType(loadBalancer.registrations, "kubernetes:core/v1:Secret")).toHaveLength(1);
  });
});

describe("two conferences on one cluster", () => {
  it("share no names, namespaces, ports or secrets", () => {
    const [alpha, beta] = pair;
    const kubernetesNames = (run: Run) =>
      run.registrations.filter(isKubernetesObject).map((object) => (object.inputs.metadata as { name: string }).name);
    const pulumiNames = (run: Run) => run.registrations.map((r) => `${r.type}::${r.name}`);
    expect(kubernetesNames(alpha).filter((name) => kubernetesNames(beta).includes(name))).toEqual([]);
    expect(pulumiNames(alpha).filter((name) => pulumiNames(beta).includes(name) && !name.startsWith("pulumi:pulumi:StackReference"))).toEqual([]);
    expect(alpha.outputs.namespace).not.toBe(beta.outputs.namespace);
    const secretNames = (run: Run) => ofType(run.registrations, "kubernetes:core/v1:Secret").map((s) => (s.inputs.metadata as { name: string }).name);
    expect(secretNames(alpha)).not.toEqual(secretNames(beta));
    expect(passwordsOf(alpha).filter((password) => passwordsOf(beta).includes(password))).toEqual([]);
    expect(envOf(alpha, "jvb").JVB_PORT).not.toBe(envOf(beta, "jvb").JVB_PORT);
  });
});

describe("secrets", () => {
  it("never appear in plain outputs", async () => {
    for (const run of [loadBalancer, nodePortByIp, withTls]) {
      for (const value of Object.values(run.outputs)) {
        if (pulumi.Output.isInstance(value)) {
          const text = await outputOf(value);
          expect(text).not.toMatch(/password|PRIVATE KEY/);
        }
      }
    }
  });
});
