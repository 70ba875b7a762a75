import type { SizingRequest } from "./schema.ts";
import { type ContainerName, type ContainerResources, MIN_POD, podForBridge, splitPod } from "../jitsi.ts";
import { formatBytes, formatMillicores } from "../quantity.ts";

/**
 * How much CPU and memory a conference needs.
 *
 * The bridge does the work: it receives each sender's video and forwards streams to every
 * receiver, at most last-N each. Its CPU is modelled as
 *   vcpuPerSender × senders × sendFactor + vcpuPerForwardedStream × forwarded × forwardFactor
 * where forwarded = n × min(lastN, n − 1) (lastN −1 meaning all others). With simulcast a sender
 * uploads three layers (sendFactor 2.2/1.5: Jitsi's VP8 ladder of 200 + 500 + 1500 kbit/s against
 * 1500 alone) and most receivers get the 500 kbit/s layer (forwardFactor 1/3); without it every
 * forwarded stream is full quality and each sender sends one (both factors 1). The bridge is sized
 * for TARGET_UTILISATION of its CPU at the expected size, and the pod around the bridge by the
 * conference component's split (domain/jitsi.ts).
 */
export interface SizingProfile {
  name: string;
  /** Where the figures come from. */
  basis: string;
  /** Bridge vCPU per sender (full-quality, one layer). */
  vcpuPerSender: number;
  /** Bridge vCPU per forwarded full-quality stream. */
  vcpuPerForwardedStream: number;
  /** Pod memory per participant on top of the smallest pod, MiB. */
  memoryPerParticipantMiB: number;
}

const SIMULCAST_SEND_FACTOR = (200 + 500 + 1500) / 1500;
const SIMULCAST_FORWARD_FACTOR = 500 / 1500;

/**
 * The bridge's CPU at the expected size is at most this share of its limit. The paper's 1-vCPU VM
 * saturated at 18 participants ("a bit too weak"); a conference at 100% has no room for bursts.
 */
export const TARGET_UTILISATION = 0.7;

/**
 * Calibrated to the seed paper: one n1-standard-1 vCPU saturated by the bridge at 18
 * participants, Jitsi's defaults of the time (last-N unlimited, simulcast on), all the load put on
 * forwarding: 18 × 17 × (1/3) × vcpuPerForwardedStream = 1.
 */
export const PAPER_PROFILE: SizingProfile = {
  name: "paper",
  basis: "seed paper: 1 vCPU saturated at 18 participants (last-N unlimited, simulcast on)",
  vcpuPerSender: 0,
  vcpuPerForwardedStream: 1 / (18 * 17 * SIMULCAST_FORWARD_FACTOR),
  memoryPerParticipantMiB: 16,
};

/**
 * Heavy HD load: every participant sends 720p60 (HPI Schul-Cloud's load test,
 * ../shared/reference/jitsi.md §2.3: 8 users 1.9 cores, 14 users 3.5 cores with last-N unlimited;
 * about 4 participants per vCPU). Fitting both terms to those two points (simulcast on, the
 * default) gives 0.223 vCPU per sender and 0.00208 per forwarded stream as measured, which
 * predicts 3.73 cores for their third point (16 users, last-N 5; measured 3.5).
 */
export const HD_PROFILE: SizingProfile = {
  name: "hd",
  basis: "HPI load test: about 4 participants per vCPU, all sending 720p60",
  vcpuPerSender: 0.2229 / SIMULCAST_SEND_FACTOR,
  vcpuPerForwardedStream: 0.00208 / SIMULCAST_FORWARD_FACTOR,
  memoryPerParticipantMiB: 32,
};

export const SIZING_PROFILES: Readonly<Record<string, SizingProfile>> = { paper: PAPER_PROFILE, hd: HD_PROFILE };

/** Frozen: sizes are shared between callers. */
export interface ConferenceSize {
  /** The whole pod, as the conference stack's `resources` take it. */
  cpu: string;
  memory: string;
  /** The same split per container, as the conference component will split it. */
  containers: Record<ContainerName, ContainerResources>;
  /** The bridge's predicted CPU at the expected size, vCPU (before headroom). */
  bridgeVcpu: number;
  profile: string;
  /** Exact amounts, for comparisons without parsing. */
  millicores: number;
  bytes: number;
}

const MEBIBYTE = 1024 * 1024;
/** Sizes are rounded up to these steps so that similar conferences get equal sizes. */
const CPU_STEP_MILLICORES = 50;
const MEMORY_STEP_BYTES = 64 * MEBIBYTE;

/** Video streams the bridge forwards with n participants and last-N. */
export function forwardedStreams(participants: number, lastN: number): number {
  const others = Math.max(0, participants - 1);
  return participants * (lastN < 0 ? others : Math.min(lastN, others));
}

/** The bridge's predicted CPU (vCPU) at full load. */
export function bridgeVcpu(request: SizingRequest, profile: SizingProfile): number {
  const n = request.expectedParticipants;
  const send = request.simulcast ? SIMULCAST_SEND_FACTOR : 1;
  const forward = request.simulcast ? SIMULCAST_FORWARD_FACTOR : 1;
  return profile.vcpuPerSender * n * send + profile.vcpuPerForwardedStream * forwardedStreams(n, request.lastN) * forward;
}

// Placement sizes every conference it places, and sizes repeat (few distinct participant counts);
// sizing is pure, so it is memoised per profile. Sizes are frozen because they are shared.
const sizeCache = new WeakMap<SizingProfile, Map<number, ConferenceSize>>();
const SIZE_CACHE_LIMIT = 10_000;

/** CPU and memory for a conference, whole and per container. */
export function sizeConference(request: SizingRequest, profile: SizingProfile = PAPER_PROFILE): ConferenceSize {
  let sizes = sizeCache.get(profile);
  if (sizes === undefined) {
    sizes = new Map();
    sizeCache.set(profile, sizes);
  }
  // A number, not a string, for speed: last-N beyond the other participants changes nothing, so
  // it is clamped, which keeps the key below 2^53 for any realistic conference.
  const n = request.expectedParticipants;
  const effectiveLastN = request.lastN < 0 ? n - 1 : Math.min(request.lastN, n - 1);
  const key = (n * 2 ** 21 + effectiveLastN) * 2 + (request.simulcast ? 1 : 0);
  let size = sizes.get(key);
  if (size === undefined) {
    if (sizes.size >= SIZE_CACHE_LIMIT) {
      sizes.clear();
    }
    size = deepFreeze(computeSize(request, profile));
    sizes.set(key, size);
  }
  return size;
}

function computeSize(request: SizingRequest, profile: SizingProfile): ConferenceSize {
  const need = bridgeVcpu(request, profile);
  const bridgeMillicores = Math.ceil((need / TARGET_UTILISATION) * 1000);
  const millicores = roundUp(podForBridge(bridgeMillicores, "cpu"), CPU_STEP_MILLICORES);
  const bytes = roundUp(MIN_POD.bytes + request.expectedParticipants * profile.memoryPerParticipantMiB * MEBIBYTE, MEMORY_STEP_BYTES);
  const cpu = formatMillicores(millicores);
  const memory = formatBytes(bytes);
  return { cpu, memory, containers: splitPod(millicores, bytes), bridgeVcpu: need, profile: profile.name, millicores, bytes };
}

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) {
    if (typeof inner === "object" && inner !== null) {
      deepFreeze(inner as object);
    }
  }
  return Object.freeze(value);
}

function roundUp(value: number, step: number): number {
  return Math.ceil(value / step) * step;
}
