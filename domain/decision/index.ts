/**
 * The decision maker: where a conference runs and how big it is. Pure: no Pulumi, no I/O, no
 * clock (../shared/STYLE.md habit 8). Participants arrive as coordinates; IP addresses are
 * resolved outside (automation/geolocation).
 */
export { type Placement, type PlacementOptions, type RankedCluster, placeConference } from "./placement.ts";
export { type ConferenceSize, HD_PROFILE, PAPER_PROFILE, SIZING_PROFILES, type SizingProfile, TARGET_UTILISATION, bridgeVcpu, forwardedStreams, sizeConference } from "./sizing.ts";
export { DEFAULT_LATENCY_MODEL, type LatencyModel, modelRttMs } from "./latency.ts";
export { greatCircleKm } from "./geometry.ts";
export {
  type CandidateCluster,
  type MeasuredRtt,
  type Objective,
  type Participant,
  type PlacementRequest,
  type SizingRequest,
  parseCandidateClusters,
  parseMeasuredRtts,
  parsePlacementRequest,
} from "./schema.ts";
export { type RunningConference, candidateClusters } from "./candidates.ts";
export { conferenceSpecFor, conferenceStackConfig } from "./conference-config.ts";
