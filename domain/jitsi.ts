/**
 * The facts of a single-conference Jitsi Meet pod that do not depend on Pulumi: images, ports,
 * XMPP names, how the conference's size is split across the four containers, and the custom
 * config files. Sources: ../shared/reference/jitsi.md (cited by section) and
 * jitsi/docker-jitsi-meet at the pinned tag.
 */
import type { Exposure } from "./contracts/testbed.ts";
import { InvalidArgumentsError } from "./errors.ts";
import { formatBytes, formatMillicores, parseCpuMillicores, parseMemoryBytes } from "./quantity.ts";

const MEBIBYTE = 1024 * 1024;

/** One tag for all four images (jitsi.md §0: the rootless images, registry ghcr.io, from stable-11146). */
export const JITSI_IMAGE_TAG = "stable-11146-2";
export const JITSI_REGISTRY = "ghcr.io/jitsi";

export const CONTAINERS = ["web", "prosody", "jicofo", "jvb"] as const;
export type ContainerName = (typeof CONTAINERS)[number];

export function jitsiImage(container: ContainerName, tag: string): string {
  return `${JITSI_REGISTRY}/${container}:${tag}`;
}

/** Ports the containers listen on (jitsi.md §1.1). */
export const PORTS = {
  webHttp: 8000,
  webHttps: 8443,
  prosodyHttp: 5280,
  jicofoRest: 8888,
  jvbHttp: 8080,
} as const;

/** JVB's single media port (jitsi.md §1.1); behind a load balancer every conference uses it. */
export const JVB_MEDIA_PORT = 10000;
/** Kubernetes' default --service-node-port-range, from which node-port conferences get their media port. */
export const NODE_PORT_RANGE = "30000-32767";

/** UDP ports a cluster's nodes must accept media on, by exposure mode. */
export function mediaUdpPorts(exposure: Exposure): string[] {
  return exposure === "loadBalancer" ? [String(JVB_MEDIA_PORT)] : [NODE_PORT_RANGE];
}

/** The public HTTPS port a load balancer offers for the web container. */
export const PUBLIC_HTTPS_PORT = 443;

/**
 * Logical XMPP names; they need not resolve (jitsi.md §1.3) and are the same on every container.
 * Everything else reaches prosody over the pod's loopback, by address rather than "localhost",
 * which a JVM may resolve to ::1 first.
 */
export const XMPP = {
  domain: "meet.jitsi",
  authDomain: "auth.meet.jitsi",
  mucDomain: "muc.meet.jitsi",
  internalMucDomain: "internal-muc.meet.jitsi",
  server: "127.0.0.1",
  boshUrlBase: "http://127.0.0.1:5280",
  breweryMuc: "jvbbrewery",
} as const;

export interface ContainerResources {
  /** requests = limits, so the pod gets Guaranteed QoS. */
  cpu: string;
  memory: string;
}

/**
 * How a conference's CPU and memory are split. Each container gets at least its floor, and the
 * three besides the bridge a share of the total (per mille) once that is more; the bridge gets the
 * rest. The bridge forwards every media packet and dominates CPU (jitsi.md §2.3: HPI gave it 8
 * cores against 0.3-0.4 for each of the others). The floors are what each needs to start: jicofo
 * and the bridge are JVMs (a JVM on a few dozen millicores takes minutes to start), prosody uses
 * one core at most, and web is nginx serving static files.
 */
const FLOOR: Record<ContainerName, { millicores: number; bytes: number }> = {
  web: { millicores: 50, bytes: 128 * MEBIBYTE },
  prosody: { millicores: 100, bytes: 128 * MEBIBYTE },
  jicofo: { millicores: 200, bytes: 384 * MEBIBYTE },
  jvb: { millicores: 150, bytes: 384 * MEBIBYTE },
};
const SHARE_PER_MILLE: Record<Exclude<ContainerName, "jvb">, { cpu: number; memory: number }> = {
  web: { cpu: 50, memory: 50 },
  prosody: { cpu: 100, memory: 100 },
  jicofo: { cpu: 100, memory: 150 },
};
const OTHERS = ["web", "prosody", "jicofo"] as const;

/** The smallest pod: every container at its floor. */
export const MIN_POD = {
  millicores: CONTAINERS.reduce((sum, container) => sum + FLOOR[container].millicores, 0),
  bytes: CONTAINERS.reduce((sum, container) => sum + FLOOR[container].bytes, 0),
};

function part(container: (typeof OTHERS)[number], total: number, kind: "cpu" | "memory"): number {
  const floor = kind === "cpu" ? FLOOR[container].millicores : FLOOR[container].bytes;
  return Math.max(floor, Math.floor((total * SHARE_PER_MILLE[container][kind]) / 1000));
}

/** What the bridge gets of a pod of `total` (millicores or bytes). */
export function bridgePart(total: number, kind: "cpu" | "memory"): number {
  return OTHERS.reduce((rest, container) => rest - part(container, total, kind), total);
}

/**
 * The smallest pod (millicores or bytes, at least MIN_POD) whose bridge gets at least `bridgeNeed`.
 * bridgePart grows with the total, so a binary search finds it.
 */
export function podForBridge(bridgeNeed: number, kind: "cpu" | "memory"): number {
  let low = kind === "cpu" ? MIN_POD.millicores : MIN_POD.bytes;
  if (bridgePart(low, kind) >= bridgeNeed) {
    return low;
  }
  let high = low;
  while (bridgePart(high, kind) < bridgeNeed) {
    high *= 2;
  }
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (bridgePart(middle, kind) >= bridgeNeed) {
      high = middle;
    } else {
      low = middle;
    }
  }
  return high;
}

/**
 * Splits a conference's total resources across the containers. The parts add up exactly to the
 * total. Totals below MIN_POD are refused: the conference spec does not allow them.
 */
export function splitResources(total: { cpu: string; memory: string }): Record<ContainerName, ContainerResources> {
  const millicores = parseCpuMillicores(total.cpu);
  const bytes = parseMemoryBytes(total.memory);
  if (millicores === undefined || bytes === undefined) {
    throw new InvalidArgumentsError([`splitResources: ${JSON.stringify(total)} are not Kubernetes quantities`]);
  }
  return splitPod(millicores, bytes);
}

/** splitResources for amounts already in millicores and bytes. */
export function splitPod(millicores: number, bytes: number): Record<ContainerName, ContainerResources> {
  if (millicores < MIN_POD.millicores || bytes < MIN_POD.bytes) {
    throw new InvalidArgumentsError([
      `splitResources: ${formatMillicores(millicores)} and ${formatBytes(bytes)} are below the smallest pod, ${formatMillicores(MIN_POD.millicores)} and ${formatBytes(MIN_POD.bytes)}`,
    ]);
  }
  const parts = {} as Record<ContainerName, ContainerResources>;
  for (const container of OTHERS) {
    parts[container] = { cpu: formatMillicores(part(container, millicores, "cpu")), memory: formatBytes(part(container, bytes, "memory")) };
  }
  parts.jvb = { cpu: formatMillicores(bridgePart(millicores, "cpu")), memory: formatBytes(bridgePart(bytes, "memory")) };
  return parts;
}

/**
 * Share of a JVM container's memory limit given to the heap. Both images default to -Xmx3072m
 * whatever the limit (jitsi.md §1.6, §1.7), which gets them OOM-killed; the rest of the limit is
 * for metaspace, code cache, thread stacks and the bridge's direct packet buffers.
 */
export const HEAP_SHARE_OF_LIMIT = 0.6;

/** -Xmx for a JVM container, in the images' "<n>m" form. */
export function javaHeap(containerMemory: string): string {
  const bytes = parseMemoryBytes(containerMemory) ?? 0;
  return `${Math.floor((bytes * HEAP_SHARE_OF_LIMIT) / (1024 * 1024))}m`;
}

export interface MediaSettings {
  /** Video streams each participant receives; -1 for all. */
  lastN: number;
  /** Whether senders send several qualities for the bridge to choose from. */
  simulcast: boolean;
}

/** Appended to the web container's config.js (jitsi.md §1.4, §2.1). */
export function customConfigJs(settings: MediaSettings): string {
  return [
    "// Written by switch-vaas for this conference.",
    `config.channelLastN = ${settings.lastN};`,
    `config.startLastN = ${settings.lastN};`,
    `config.disableSimulcast = ${!settings.simulcast};`,
    "",
  ].join("\n");
}

/**
 * Included by the bridge's jvb.conf (jitsi.md §2.2): the bridge-wide last-N caps every endpoint's
 * own value, and the initial value applies before clients signal theirs.
 */
export function customJvbConf(settings: MediaSettings): string {
  return [
    "# Written by switch-vaas for this conference.",
    `videobridge.cc.jvb-last-n = ${settings.lastN}`,
    `videobridge.cc.initial-last-n = ${settings.lastN}`,
    "",
  ].join("\n");
}
