/**
 * One offline-engine worker (a child process of ./offline-engine.ts): evaluates a stack program on
 * Pulumi's mock runtime, one operation at a time — the mock runtime lives on globalThis, so a
 * process can hold only one — and answers with what the program registered and its outputs,
 * secrets masked. While it runs it tells the parent how many registrations a preview of the
 * program planned, then each registration of the `up` as the mocks receive it, so that progress is
 * what the program has done, not a count made after it ended. It writes nothing: the parent owns
 * the stacks' state on disk.
 */
import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import type * as pulumi from "@pulumi/pulumi";
import { NODE_PORT_RANGE } from "../../domain/jitsi.ts";
import type { StackConfigMap } from "./engine.ts";
import { type RecordedResource, stateFile } from "./offline-state.ts";
import { type OnRegistration, RecordingMocks, STACK_REFERENCE, displayInputs, displayOutputs, evaluateOffline, secretDigests } from "./offline.ts";

export type { RecordedResource } from "./offline-state.ts";

export interface WorkerRequest {
  stack: string;
  config: StackConfigMap;
  /** Where the parent keeps stack state: a StackReference reads the referenced stack's outputs there. */
  stateDir: string;
  /** Only the preview: answer with what it would register (`planned`), and run no `up`. */
  planOnly?: boolean;
  /** The `up` without a preview first: no `planned` is sent (the parent knows its total). */
  skipPreview?: boolean;
  /** The key (hex) of the digests recorded of secret inputs (RecordedResource `secretDigests`); none are recorded without it. */
  digestKey?: string;
}

/** A registration of a preview, as far as a real engine's steps follow from it. */
export interface PlannedResource {
  type: string;
  custom: boolean;
  /** The provider it names; none for a default provider, or for a component. */
  provider?: string;
}

/** The last message of a request: what the program registered and output, or why it failed. */
export type WorkerReply =
  | { kind: "finished"; ok: true; resources: RecordedResource[]; outputs: Record<string, unknown> }
  | { kind: "finished"; ok: true; planned: PlannedResource[] }
  | { kind: "finished"; ok: false; message: string };

/**
 * What a worker sends for a request, in this order: `planned` once (the registrations of a preview;
 * `complete` false when the preview failed part way, and the total is what it reached), a
 * `registered` for each registration of the `up` as it happens, and the reply.
 */
export type WorkerMessage = { kind: "planned"; total: number; complete: boolean } | { kind: "registered"; done: number } | WorkerReply;

/** A load balancer's address where nothing is deployed: in TEST-NET-3 (RFC 5737), never routable; one per stack. */
function loadBalancerIpOf(stack: string): string {
  return `203.0.113.${1 + (hashOf(stack) % 254)}`;
}

/** 64 hex digits, as Docker's ids of containers and networks are, the same for the same `key`. */
function dockerIdOf(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** An image's id where nothing is pulled: the same for the same image name, on every host, as a real image's content digest is. */
function imageIdOf(image: string): string {
  return `sha256:${createHash("sha256").update(`image ${image}`).digest("hex")}`;
}

/**
 * The registry's digest of an image's manifest, as Docker records it after a pull
 * ("<repository>@sha256:…"; terraform-provider-docker determineRepoDigest): its repository is the
 * name without its tag.
 */
function repoDigestOf(image: string): string {
  const tag = /:[^/:]*$/.exec(image);
  const repository = tag === null ? image : image.slice(0, tag.index);
  return `${repository}@sha256:${createHash("sha256").update(`manifest ${image}`).digest("hex")}`;
}

/** The network settings a container asked for (`networksAdvanced`), as far as the SDK passes them. */
interface NetworkRequest {
  name?: string;
  ipv4Address?: string;
}

/** A Docker network's subnet and gateway, as its `ipamConfigs` give them. */
interface Ipam {
  subnet?: string;
  gateway?: string;
}

/**
 * What the providers would have computed, as far as the programs read it or an operator looks at
 * it: node ports (from the port's stack and name, so the same stack keeps its ports), a load
 * balancer's address, a GKE cluster's endpoint, a referenced stack's outputs from the state on
 * disk, and for Docker an image's id and repository digest and a container's addresses on the
 * networks it joins (`networkDatas`, from the address it asked for and its network's subnet and
 * gateway) and its hostname (Docker's default: its id's first 12 digits). The ids are {@link simulatedId}'s.
 */
function simulated(stateDir: string, stack: string) {
  // Docker networks by provider and name: a container joins one by name, on its own host.
  const networks = new Map<string, Ipam[]>();
  return (args: pulumi.runtime.MockResourceArgs): Record<string, unknown> => {
    const inputs = args.inputs as Record<string, unknown>;
    switch (args.type) {
      case "docker:index/remoteImage:RemoteImage":
        return { imageId: imageIdOf(String(inputs.name)), repoDigest: repoDigestOf(String(inputs.name)) };
      case "docker:index/network:Network":
        networks.set(`${args.provider ?? ""}/${String(inputs.name)}`, (inputs.ipamConfigs as Ipam[] | undefined) ?? []);
        return {};
      case "docker:index/container:Container": {
        const networkDatas = ((inputs.networksAdvanced as NetworkRequest[] | undefined) ?? []).map((request) => {
          const ipam = (networks.get(`${args.provider ?? ""}/${request.name ?? ""}`) ?? []).find((candidate) => candidate.subnet?.includes(".") === true);
          const prefix = ipam?.subnet?.split("/")[1];
          return {
            networkName: request.name,
            ...(request.ipv4Address === undefined ? {} : { ipAddress: request.ipv4Address }),
            ...(prefix === undefined ? {} : { ipPrefixLength: Number(prefix) }),
            ...(ipam?.gateway === undefined ? {} : { gateway: ipam.gateway }),
          };
        });
        return { networkDatas, hostname: containerIdOf(stack, args.name).slice(0, 12) };
      }
      case STACK_REFERENCE:
        return referencedOutputs(stateDir, inputs);
      case "kubernetes:core/v1:Service": {
        const spec = inputs.spec as { type?: string; ports?: { name?: string; nodePort?: number }[] };
        const ports = (spec.ports ?? []).map((port) => ({ ...port, nodePort: port.nodePort ?? nodePortOf(`${stack}/${args.name}/${port.name ?? ""}`) }));
        const loadBalancer = spec.type === "LoadBalancer" ? { ingress: [{ ip: loadBalancerIpOf(stack) }] } : {};
        return { spec: { ...spec, ports }, status: { loadBalancer } };
      }
      case "gcp:container/cluster:Cluster":
        return { endpoint: `${args.name}.offline.invalid`, masterAuth: { clusterCaCertificate: Buffer.from("offline: no certificate").toString("base64") } };
      default:
        return {};
    }
  };
}

/** A stack reference's answer: the referenced stack's outputs from its state file in `stateDir`, or none. */
export function referencedOutputs(stateDir: string, inputs: unknown): Record<string, unknown> {
  const file = stateFile(stateDir, String((inputs as { name?: unknown }).name));
  try {
    return { outputs: (JSON.parse(readFileSync(file, "utf8")) as { outputs: unknown }).outputs };
  } catch {
    // RecordingMocks refuses the reference, naming the stack.
    return {};
  }
}

function containerIdOf(stack: string, name: string): string {
  return dockerIdOf(`${stack}/container/${name}`);
}

/**
 * The ids a real provider would give, where the programs or an operator read them: Docker's
 * 64-digit ids of containers and networks (from the stack and the resource's name, so that the
 * same stack keeps them), and a remote image's id as pulumi-docker makes it, the image's id
 * followed by its name (terraform-provider-docker resourceDockerImageRead).
 */
function simulatedId(stack: string) {
  return (args: pulumi.runtime.MockResourceArgs): string | undefined => {
    switch (args.type) {
      case "docker:index/container:Container":
        return containerIdOf(stack, args.name);
      case "docker:index/network:Network":
        return dockerIdOf(`${stack}/network/${args.name}`);
      case "docker:index/remoteImage:RemoteImage": {
        const image = String((args.inputs as { name?: unknown }).name);
        return `${imageIdOf(image)}${image}`;
      }
      default:
        return undefined;
    }
  };
}

const [FIRST_NODE_PORT, LAST_NODE_PORT] = NODE_PORT_RANGE.split("-").map(Number) as [number, number];

function nodePortOf(key: string): number {
  return FIRST_NODE_PORT + (hashOf(key) % (LAST_NODE_PORT - FIRST_NODE_PORT + 1));
}

function hashOf(key: string): number {
  return createHash("sha256").update(key).digest().readUInt32BE(0);
}

/**
 * Mocks that answer as the providers would (see `simulated`, `simulatedId`) and record what the
 * program registers, telling `onRegistration` of each.
 */
export function offlineMocks(stateDir: string, stack: string, onRegistration?: OnRegistration): RecordingMocks {
  return new RecordingMocks(simulated(stateDir, stack), onRegistration, simulatedId(stack));
}

/** Runs the project's entry point (stacks/index.ts) once on the mock runtime with `request`'s config. */
function run(request: WorkerRequest, preview: boolean, mocks: RecordingMocks) {
  const config = Object.fromEntries(Object.entries(request.config).map(([key, entry]) => [key, entry.value]));
  const secretKeys = Object.entries(request.config).flatMap(([key, entry]) => (entry.secret ? [key] : []));
  return evaluateOffline(async () => (await import("../../stacks/index.ts")).default(), { stack: request.stack, config, secretKeys, preview, mocks });
}

/**
 * Evaluates the program as an `up` would, with `request`'s config, telling `send` what it plans
 * and does as it goes (see WorkerMessage): first a preview, whose registrations are the total —
 * as the local engine takes its total from `pulumi preview` — then the `up` itself. With
 * `skipPreview`, the `up` alone.
 */
export async function evaluate(request: WorkerRequest, send: (message: WorkerMessage) => void): Promise<WorkerReply> {
  if (request.skipPreview !== true || request.planOnly === true) {
    const planning = offlineMocks(request.stateDir, request.stack);
    let complete = true;
    try {
      await run(request, true, planning);
    } catch (error) {
      if (request.planOnly === true) {
        return { kind: "finished", ok: false, message: error instanceof Error ? error.message : String(error) };
      }
      // The `up` below fails the same way, if the program is at fault, and says why.
      complete = false;
    }
    if (request.planOnly === true) {
      return {
        kind: "finished",
        ok: true,
        planned: planning.registrations.map((registration) => ({ type: registration.type, custom: registration.custom, ...(registration.provider === undefined ? {} : { provider: registration.provider }) })),
      };
    }
    send({ kind: "planned", total: planning.registrations.length, complete });
  }
  const registered: OnRegistration = (_registration, count) => send({ kind: "registered", done: count });
  const digestKey = request.digestKey;
  const digest = digestKey === undefined ? undefined : (text: string) => createHmac("sha256", Buffer.from(digestKey, "hex")).update(text).digest("hex");
  try {
    const { registrations, outputs } = await run(request, false, offlineMocks(request.stateDir, request.stack, registered));
    return {
      kind: "finished",
      ok: true,
      resources: registrations.map(
        (registration): RecordedResource => ({
          type: registration.type,
          name: registration.name,
          custom: registration.custom,
          inputs: displayInputs(registration.inputs),
          ...(digest === undefined ? {} : { secretDigests: secretDigests(registration.inputs, digest) }),
        }),
      ),
      outputs: (await displayOutputs(outputs)) as Record<string, unknown>,
    };
  } catch (error) {
    // The programs' refusals name the key and the fix; a stack trace would carry config values.
    return { kind: "finished", ok: false, message: error instanceof Error ? error.message : String(error) };
  }
}

// Only as the forked entry point: a module that imports stateFile from a forked process of its own
// (a vitest worker, a process manager's child) must not answer that process's IPC messages.
if (import.meta.main && process.send !== undefined) {
  const send = (message: WorkerMessage) => process.send!(message);
  process.on("message", (request: WorkerRequest) => {
    void evaluate(request, send).then(send);
  });
}
