import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RecordingMocks, type Registration, evaluateOffline, isSecretEnvelope, providerName } from "../../automation/engine/offline.ts";
import { readStackConfig } from "../../automation/engine/stack-config.ts";
import { dnsmasqConfig } from "../../components/cdn-pop/dns.ts";
import { GIVEN_CONFIG } from "../../components/cdn-pop/images.ts";
import { loadBalancerConfig } from "../../components/cdn-pop/nginx.ts";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { ofType } from "../support/pulumi.ts";

const stacks = join(import.meta.dirname, "..", "..", "stacks");
const vienna = JSON.parse(readStackConfig(join(stacks, "Pulumi.pop-vienna.yaml")).config["switch-vaas:pop"]!) as Record<string, unknown>;
const local = JSON.parse(readStackConfig(join(stacks, "Pulumi.pop-local.yaml")).config["switch-vaas:pop"]!) as Record<string, unknown>;

const KEYS = { host1: "key-of-host1-0123456789", host2: "key-of-host2-0123456789", host3: "key-of-host3-0123456789", local: "key-of-local-0123456789" };

/** The keys of the PoP's own hosts: a key for a host the PoP does not have is refused. */
function keysOf(pop: unknown): Record<string, string> {
  const hosts = new Set(((pop as { hosts?: { name: string }[] }).hosts ?? []).map((host) => host.name));
  return Object.fromEntries(Object.entries(KEYS).filter(([host]) => hosts.has(host)));
}

function configOf(pop: unknown, keys: Record<string, string> = keysOf(pop)): Record<string, string> {
  return { "switch-vaas:pop": JSON.stringify(pop), "switch-vaas:reportKeys": JSON.stringify(keys) };
}

async function run(pop: unknown): Promise<Registration[]> {
  const mocks = new RecordingMocks((resource) => (resource.type === "docker:index/remoteImage:RemoteImage" ? { imageId: `sha256:image-of-${resource.name}` } : {}));
  await evaluateOffline(async () => (await import("../../stacks/cdn-pop.ts")).default(), {
    preview: false,
    mocks,
    config: configOf(pop),
    secretKeys: ["switch-vaas:reportKeys"],
  });
  return mocks.registrations;
}

type ContainerInputs = { uploads: { file: string; content: string }[] };
const containers = (registrations: Registration[]) =>
  Object.fromEntries(ofType(registrations, "docker:index/container:Container").map((c) => [c.name, c]));

describe("the Vienna PoP: three hosts, macvlan", () => {
  it("reaches every host through its own Docker provider over SSH", async () => {
    const registrations = await run(vienna);
    const providers = ofType(registrations, "pulumi:providers:docker");
    expect(providers.map((p) => [p.name, p.inputs.host, JSON.parse(String(p.inputs.sshOpts)) as unknown])).toEqual(
      ["host1", "host2", "host3"].map((host) => [`pop-${host}`, `ssh://pop@${host}.vienna.example.org`, ["-o", "StrictHostKeyChecking=yes"]]),
    );
    for (const resource of registrations.filter((r) => r.type.startsWith("docker:index/"))) {
      expect(providerName(resource), resource.name).toBe(`pop-${resource.name.split("-")[1]}`);
    }
  });

  it("puts a macvlan network on each host's parent interface with the PoP's subnet", async () => {
    const networks = ofType(await run(vienna), "docker:index/network:Network");
    expect(networks).toHaveLength(3);
    for (const network of networks) {
      expect(network.inputs).toEqual({
        name: "pop-vienna",
        driver: "macvlan",
        options: { parent: "eth0" },
        ipamConfigs: [{ subnet: "192.0.2.0/24", gateway: "192.0.2.1" }],
      });
    }
  });

  it("runs one container of its role image per running edge, and the load balancer, mid-cache and DNS", async () => {
    const byName = containers(await run(vienna));
    expect(Object.keys(byName).sort()).toEqual([
      "pop-host1-im",
      "pop-host1-lb",
      "pop-host1-small",
      "pop-host1-vod",
      "pop-host2-im",
      "pop-host2-large",
      "pop-host2-mid",
      "pop-host2-small",
      "pop-host3-dns",
      "pop-host3-im",
      "pop-host3-small",
    ]);
    expect(byName["pop-host1-small"]!.inputs).toEqual({
      name: "pop-vienna-small",
      image: "sha256:image-of-pop-host1-edge-small",
      networksAdvanced: [{ name: "pop-vienna", ipv4Address: "192.0.2.20" }],
      envs: ["POP_MID=192.0.2.11:80", "POP_STATUS_ALLOW=192.0.2.0/24"],
      labels: [
        { label: "switch-vaas/pop", value: "vienna" },
        { label: "switch-vaas/role", value: "small" },
      ],
      restart: "unless-stopped",
    });
    expect(byName["pop-host2-mid"]!.inputs).toMatchObject({ image: "sha256:image-of-pop-host2-mid", envs: ["POP_ORIGIN=origin.example.org:80"] });
    expect((byName["pop-host1-lb"]!.inputs as ContainerInputs).uploads).toEqual([
      {
        file: GIVEN_CONFIG.lb,
        content: loadBalancerConfig({
          listen: { address: "0.0.0.0", port: 80 },
          endpoints: { small: ["192.0.2.20:80", "192.0.2.22:80", "192.0.2.24:80"], large: ["192.0.2.23:80"], vod: ["192.0.2.21:80"], live: [] },
          fallback: "192.0.2.11:80",
        }),
      },
    ]);
    expect((byName["pop-host3-dns"]!.inputs as ContainerInputs).uploads).toEqual([
      {
        file: GIVEN_CONFIG.dns,
        content: dnsmasqConfig({
          listen: { address: "0.0.0.0", port: 53 },
          zone: "vienna.cdn.example.org",
          loadBalancer: "192.0.2.10",
          midCache: "192.0.2.11",
          edges: { small: ["192.0.2.20", "192.0.2.22", "192.0.2.24"], large: ["192.0.2.23"], vod: ["192.0.2.21"], live: [] },
        }),
      },
    ]);
  });

  it("pulls each role image it runs from the registry, by tag", async () => {
    const images = ofType(await run(vienna), "docker:index/remoteImage:RemoteImage").map((image) => [image.name, image.inputs.name]);
    expect(images).toContainEqual(["pop-host1-edge-small", "registry.vienna.example.org/switch-vaas/pop-edge-small:0.1.0"]);
    expect(images).toContainEqual(["pop-host3-dns", "registry.vienna.example.org/switch-vaas/pop-dns:0.1.0"]);
    expect(images).toHaveLength(11);
  });

  it("runs an instance manager on every host, on the PoP network, reading the host's /proc, its key secret", async () => {
    const byName = containers(await run(vienna));
    const im = byName["pop-host2-im"]!.inputs;
    expect(im).toMatchObject({
      name: "pop-vienna-im",
      image: "sha256:image-of-pop-host2-instance-manager",
      networksAdvanced: [{ name: "pop-vienna", ipv4Address: "192.0.2.32" }],
      mounts: [{ type: "bind", source: "/proc", target: "/host/proc", readOnly: true }],
    });
    expect(isSecretEnvelope(im.envs)).toBe(true);
    const envs = (im.envs as { value: string[] }).value;
    expect(envs).toEqual([
      "POP=vienna",
      "HOST=host2",
      "PARENT_INTERFACE=eth0",
      "LINK_MBPS=1000",
      `EDGES=${JSON.stringify(["small", "large", "vod", "live"].map((role) => ({ role, statusUrl: `http://pop-vienna-${role}/pop-status` })))}`,
      "REPORT_ENDPOINT=https://switch-vaas.example.org/v1/pops/vienna/reports",
      `REPORT_KEY=${KEYS.host2}`,
      "STAT_FILE=/host/proc/stat",
      "NET_DEV_FILE=/host/proc/1/net/dev",
    ]);
  });
});

describe("the local PoP: one Docker host, bridge network", () => {
  it("uses a bridge network and the local daemon", async () => {
    const registrations = await run(local);
    expect(ofType(registrations, "pulumi:providers:docker")[0]?.inputs.host).toBe("unix:///var/run/docker.sock");
    expect(ofType(registrations, "docker:index/network:Network")[0]?.inputs).toEqual({
      name: "pop-local",
      driver: "bridge",
      options: {},
      ipamConfigs: [{ subnet: "172.28.0.0/24", gateway: "172.28.0.1" }],
    });
    expect(Object.keys(containers(registrations))).toHaveLength(8);
  });
});

describe("a layout change", () => {
  it("leaves every container whose role and address are unchanged exactly as it was", async () => {
    const before = containers(await run(vienna));
    // host1 drops its VoD edge; host3 starts a live one.
    const { "host1/vod": _dropped, ...kept } = vienna.addresses as Record<string, string>;
    const next = {
      ...vienna,
      layout: { host1: ["small"], host2: ["small", "large"], host3: ["small", "live"] },
      addresses: { ...kept, "host3/live": "192.0.2.25" },
    };
    const after = containers(await run(next));
    const unchanged = ["pop-host1-small", "pop-host2-small", "pop-host2-large", "pop-host3-small", "pop-host2-mid", "pop-host1-im", "pop-host2-im", "pop-host3-im"];
    for (const name of unchanged) {
      expect(after[name]?.inputs, name).toEqual(before[name]?.inputs);
    }
    expect(after["pop-host1-vod"]).toBeUndefined();
    expect(after["pop-host3-live"]).toBeDefined();
    // The load balancer and the DNS list the edges, so they alone of the rest change.
    expect(after["pop-host1-lb"]?.inputs).not.toEqual(before["pop-host1-lb"]?.inputs);
    expect(after["pop-host3-dns"]?.inputs).not.toEqual(before["pop-host3-dns"]?.inputs);
  });
});

describe("invalid PoP config, rejected before anything is registered", () => {
  const hosts = vienna.hosts as Record<string, unknown>[];
  it.each([
    ["a duplicate host", { ...vienna, hosts: [...hosts, hosts[0]] }, 'switch-vaas:pop.hosts[3].name "host1" is already the name of another host; give every host a unique name'],
    [
      "an address outside its subnet",
      { ...vienna, addresses: { ...(vienna.addresses as object), "host3/small": "198.51.100.7" } },
      `switch-vaas:pop.addresses.host3/small "198.51.100.7" is not a usable address of host3's subnet 192.0.2.0/24`,
    ],
    ["an unknown role", { ...vienna, layout: { ...(vienna.layout as object), host3: ["small", "images"] } }, 'switch-vaas:pop.layout.host3[1] "images" is not an edge role; use "small", "large", "vod", "live"'],
    ["a layout that names an unknown host", { ...vienna, layout: { ...(vienna.layout as object), host9: ["small"] } }, "switch-vaas:pop.layout.host9 names no host of the PoP; remove it or add the host to hosts"],
    ["an edge without an address", { ...vienna, layout: { ...(vienna.layout as object), host3: ["small", "live"] } }, 'switch-vaas:pop.addresses has no address for the live edge on host3; add "host3/live"'],
    [
      "a host without an instance manager address",
      { ...vienna, addresses: Object.fromEntries(Object.entries(vienna.addresses as object).filter(([key]) => key !== "host3/im")) },
      `switch-vaas:pop.addresses has no address for host3's instance manager; add "host3/im"`,
    ],
  ])("rejects %s", async (_case, pop, message) => {
    const mocks = new RecordingMocks();
    const error = await evaluateOffline(async () => (await import("../../stacks/cdn-pop.ts")).default(), { mocks, config: configOf(pop) }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(InvalidArgumentsError);
    expect((error as Error).message).toBe(message);
    expect(mocks.registrations).toEqual([]);
  });

  it("rejects a host without a report key, saying how to set one", async () => {
    const mocks = new RecordingMocks();
    const { host3: _missing, ...keys } = keysOf(vienna);
    const error = await evaluateOffline(async () => (await import("../../stacks/cdn-pop.ts")).default(), { mocks, config: configOf(vienna, keys) }).catch(
      (caught: unknown) => caught,
    );
    expect((error as Error).message).toBe(`switch-vaas:reportKeys.host3 is missing; set it: pulumi config set --secret --path 'reportKeys.host3' "$(openssl rand -hex 32)"`);
    expect(mocks.registrations).toEqual([]);
  });
});
