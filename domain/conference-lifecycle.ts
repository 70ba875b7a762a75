/**
 * The conference's state machine (ARCHITECTURE.md "Conference lifecycle", STYLE.md 20): its states
 * and its transitions as data, in one place. The store persists what this table says and the
 * service runs operations by it; neither decides a transition of its own.
 */

export const CONFERENCE_STATES = ["placed", "deploying", "ready", "failed", "stopping", "stopped"] as const;
export type ConferenceState = (typeof CONFERENCE_STATES)[number];

/** States in which a conference holds its cluster's capacity. */
export const HOLDING_STATES: readonly ConferenceState[] = ["placed", "deploying", "ready", "stopping"];
export const TERMINAL_STATES: readonly ConferenceState[] = ["failed", "stopped"];

/**
 * What happens to a conference: an attempt of its `up` starts, the `up` succeeds, the organizer
 * stops it, a destroy of its stack ends (after a stop, or cleaning up a failed create).
 */
export const LIFECYCLE_EVENTS = ["upStarted", "upSucceeded", "stopRequested", "destroySucceeded", "destroyFailed"] as const;
export type LifecycleEvent = (typeof LIFECYCLE_EVENTS)[number];

/**
 * Every transition there is; an event a state does not list changes nothing (an `up` that
 * succeeds after its conference was stopped, a destroy that ends after another one already did).
 * A failed create stays `deploying` while its cleanup runs, and becomes `failed` when it ends.
 */
export const TRANSITIONS: Readonly<Record<ConferenceState, Readonly<Partial<Record<LifecycleEvent, ConferenceState>>>>> = {
  placed: { upStarted: "deploying", stopRequested: "stopping", destroySucceeded: "failed", destroyFailed: "failed" },
  deploying: { upStarted: "deploying", upSucceeded: "ready", stopRequested: "stopping", destroySucceeded: "failed", destroyFailed: "failed" },
  ready: { stopRequested: "stopping" },
  stopping: { destroySucceeded: "stopped", destroyFailed: "failed" },
  // Only a conference whose stack outlived a failed destroy: `stackLeft` says so.
  failed: { stopRequested: "stopping" },
  stopped: {},
};

/** Facts the table cannot hold: whether a failed conference's stack still exists. */
export interface LifecycleFacts {
  stackLeft?: boolean;
}

/** The state `event` leads to from `state`, or undefined when it changes nothing. */
export function nextState(state: ConferenceState, event: LifecycleEvent, facts: LifecycleFacts = {}): ConferenceState | undefined {
  if (state === "failed" && event === "stopRequested" && facts.stackLeft !== true) {
    return undefined;
  }
  return TRANSITIONS[state][event];
}

/** Whether a conference in `state` may have its stack brought up: never once it was asked to stop. */
export function mayDeploy(state: ConferenceState): boolean {
  return nextState(state, "upStarted") !== undefined;
}
