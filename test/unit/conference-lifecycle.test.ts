import { describe, expect, it } from "vitest";
import { CONFERENCE_STATES, type ConferenceState, LIFECYCLE_EVENTS, type LifecycleEvent, mayDeploy, nextState } from "../../domain/conference-lifecycle.ts";

/**
 * The conference's state machine, every state against every event, written out here a second time
 * on purpose: a change to the table in domain/ must be a change to this one too.
 */
const EXPECTED: Record<ConferenceState, Record<LifecycleEvent, ConferenceState | undefined>> = {
  placed: { upStarted: "deploying", upSucceeded: undefined, stopRequested: "stopping", destroySucceeded: "failed", destroyFailed: "failed" },
  deploying: { upStarted: "deploying", upSucceeded: "ready", stopRequested: "stopping", destroySucceeded: "failed", destroyFailed: "failed" },
  ready: { upStarted: undefined, upSucceeded: undefined, stopRequested: "stopping", destroySucceeded: undefined, destroyFailed: undefined },
  stopping: { upStarted: undefined, upSucceeded: undefined, stopRequested: undefined, destroySucceeded: "stopped", destroyFailed: "failed" },
  // A failed conference is stopped again only when its stack outlived a failed destroy (below).
  failed: { upStarted: undefined, upSucceeded: undefined, stopRequested: undefined, destroySucceeded: undefined, destroyFailed: undefined },
  stopped: { upStarted: undefined, upSucceeded: undefined, stopRequested: undefined, destroySucceeded: undefined, destroyFailed: undefined },
};

const PAIRS = CONFERENCE_STATES.flatMap((state) => LIFECYCLE_EVENTS.map((event) => ({ state, event, next: EXPECTED[state][event] })));

describe("the conference lifecycle", () => {
  it.each(PAIRS)("$state --$event--> $next", ({ state, event, next }) => {
    expect(nextState(state, event)).toBe(next);
  });

  it("stops a failed conference again only when its stack outlived a failed destroy", () => {
    expect(nextState("failed", "stopRequested", { stackLeft: true })).toBe("stopping");
    expect(nextState("failed", "stopRequested", { stackLeft: false })).toBeUndefined();
  });

  it("never deploys a conference that was asked to stop, or has ended", () => {
    expect(CONFERENCE_STATES.filter(mayDeploy)).toEqual(["placed", "deploying"]);
  });

  it("never leaves stopped, and reaches it only from stopping", () => {
    for (const event of LIFECYCLE_EVENTS) {
      expect(nextState("stopped", event, { stackLeft: true })).toBeUndefined();
    }
    expect(PAIRS.filter((pair) => pair.next === "stopped").map((pair) => pair.state)).toEqual(["stopping"]);
  });
});
