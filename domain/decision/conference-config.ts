import { CONFERENCE_CONFIG, type ConferenceSpec, parseConferenceSpec } from "../contracts/conference.ts";
import { PROGRAM_KEY, type ProgramName, qualifiedKey } from "../contracts/project.ts";
import { ExhaustedError } from "../errors.ts";
import type { Placement } from "./placement.ts";
import type { SizingRequest } from "./schema.ts";

/**
 * The conference stack's config from a decision: the cluster the placement chose and the size it
 * computed. Throws an ExhaustedError when no cluster has room, and an InvalidArgumentsError (from
 * the contract's own schema) when the id is not one a stack can have.
 */
export function conferenceSpecFor(id: string, request: SizingRequest, placement: Placement): ConferenceSpec {
  if (placement.cluster === null) {
    const reasons = placement.ranking.map((entry) => `${entry.cluster}: ${entry.reason ?? "no room"}`).join("; ");
    throw new ExhaustedError(`no cluster has room for a conference of ${placement.size.cpu} CPU and ${placement.size.memory} memory (${reasons})`);
  }
  return parseConferenceSpec(
    {
      id,
      cluster: placement.cluster,
      expectedParticipants: request.expectedParticipants,
      lastN: request.lastN,
      simulcast: request.simulcast,
      resources: { cpu: placement.size.cpu, memory: placement.size.memory },
    },
    qualifiedKey(CONFERENCE_CONFIG.conference),
  );
}

/**
 * The conference stack's config as the Automation API sets it (`Stack.setAllConfig`): fully
 * qualified keys, objects as JSON, nothing secret (the decision holds none).
 */
export function conferenceStackConfig(spec: ConferenceSpec, testbedStack: string): Record<string, { value: string; secret: boolean }> {
  return {
    [qualifiedKey(PROGRAM_KEY)]: { value: "conference" satisfies ProgramName, secret: false },
    [qualifiedKey(CONFERENCE_CONFIG.conference)]: { value: JSON.stringify(spec), secret: false },
    [qualifiedKey(CONFERENCE_CONFIG.testbedStack)]: { value: testbedStack, secret: false },
  };
}
