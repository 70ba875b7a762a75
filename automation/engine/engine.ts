/**
 * The one interface the service runs stacks through (ARCHITECTURE.md "Engines"): `local` drives the
 * real Pulumi CLI through the Automation API, `offline` evaluates the same programs on Pulumi's mock
 * runtime. Both keep one rule the callers rely on: a stack's operations never overlap — the
 * per-stack queue around them (./queue.ts) guarantees it, and an engine refuses a second operation
 * on a stack with an EngineError of kind "conflict" rather than running it.
 */

export const OPERATION_KINDS = ["up", "destroy", "refresh"] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];

/** Config as the Automation API sets it: fully qualified keys, objects as JSON. */
export type StackConfigMap = Record<string, { value: string; secret: boolean }>;

/** A stack to bring up: its name (`conf-<id>`, `testbed`) and its whole config. */
export interface StackSpec {
  stack: string;
  config: StackConfigMap;
}

/** What an operation did to one resource, in the words of Pulumi's steps (a replacement's three steps are one "replace"). */
export const CHANGE_ACTIONS = ["create", "update", "replace", "delete", "same"] as const;
export type ChangeAction = (typeof CHANGE_ACTIONS)[number];

/**
 * What an operation reports while it runs. `progress` counts resource steps done of the steps
 * planned (the total is known before the first step); `diagnostic` is a message of the engine's
 * or the program's, never a secret (the engines mask them). `change` says what the operation did
 * to one resource: one for each custom resource of the stack (providers and stack references
 * aside, see {@link reportsChange}), all of them once a successful `up` or `destroy` has ended
 * and none for a failed or cancelled one; `resource` is the name the program registered it by
 * ("pop-vienna-host1-small"), `resourceType` its type token ("docker:index/container:Container").
 * A destroy reports every resource it deleted as "delete".
 */
export type EngineEvent =
  | { type: "progress"; done: number; total: number }
  | { type: "diagnostic"; severity: "info" | "warning" | "error"; message: string }
  | { type: "change"; resource: string; resourceType: string; action: ChangeAction };

export interface OperationOptions {
  /** Aborting cancels the operation gracefully (the CLI's SIGINT; the offline worker is stopped). */
  signal?: AbortSignal;
  onEvent?: (event: EngineEvent) => void;
  /**
   * An `up` without the preview the local engine runs first to count a stack's steps (a new
   * stack's are counted offline either way); the offline engine evaluates no preview of its own
   * then either. Progress then counts every step, "same" ones too, of a total that is the
   * offline planner's count of what the program registers, or, where the program cannot be
   * evaluated offline, the number of resources the stack's previous state holds; the total grows
   * as the update finds more, as always. Defaults to false.
   */
  skipPreview?: boolean;
}

/**
 * Whether an engine reports a `change` for a resource: custom resources only, and neither
 * providers (a default provider's name is the engine's, not the program's) nor stack references
 * (read, never changed).
 */
export function reportsChange(type: string, custom: boolean): boolean {
  return custom && !type.startsWith("pulumi:providers:") && type !== "pulumi:pulumi:StackReference";
}

/** Stack outputs with secret values replaced by SECRET_MASK. */
export type StackOutputs = Record<string, unknown>;

/** What stands for a secret output value wherever outputs leave an engine. */
export const SECRET_MASK = "[secret]";

/**
 * Why an operation did not succeed. `transient` failures (a lock held by a live process, a
 * backend that did not answer) may succeed when retried; the others will not.
 */
export type EngineErrorKind = "conflict" | "cancelled" | "failed" | "unavailable";

export class EngineError extends Error {
  override readonly name = "EngineError";
  constructor(
    readonly kind: EngineErrorKind,
    message: string,
    readonly transient = kind === "conflict" || kind === "unavailable",
  ) {
    super(message);
  }
}

export function isEngineError(error: unknown): error is EngineError {
  return error instanceof EngineError;
}

export interface Engine {
  /** Which engine this is; the service tells users when it is "offline" (nothing is deployed). */
  readonly kind: "local" | "offline";
  /** Creates the stack if needed, sets its config and brings it up; resolves with its outputs. */
  up(spec: StackSpec, options?: OperationOptions): Promise<StackOutputs>;
  /** Destroys every resource of the stack and removes it; a stack that does not exist is already gone. */
  destroy(stack: string, options?: OperationOptions): Promise<void>;
  /** Reconciles the stack's state with what exists, clearing pending operations an interrupted run left. */
  refresh(stack: string, options?: OperationOptions): Promise<void>;
  /**
   * Clears the lock an interrupted operation left (`pulumi cancel`). Call it only when no process of
   * this service is running an operation on the stack: it never stops a live one (abort its signal).
   */
  cancel(stack: string): Promise<void>;
  /** The stack's outputs, or undefined when the backend has no such stack. */
  outputs(stack: string): Promise<StackOutputs | undefined>;
  /** The names of the project's stacks the backend holds. */
  stacks(): Promise<string[]>;
  /** Waits for operations in flight to settle and releases processes; call after aborting them. */
  close(): Promise<void>;
}

/**
 * gRPC's CANCELLED and UNAVAILABLE: the statuses the Pulumi runtime's calls to the engine end with
 * once it has gone, and the message it gives them (runtime/resource.js, invoke.js).
 */
const GRPC_ENGINE_GONE = new Set([1, 14]);
const ENGINE_GONE = /resource monitor (is terminating|shut down)/i;

/**
 * Whether `reason` is a call of an inline program to the CLI's resource monitor after the monitor
 * shut down: the CLI ended the operation (it failed, was cancelled, or its process was killed) while
 * the program, in this process, still had calls in flight. The Node.js runtime leaves some of
 * those rejections unhandled (registerResourceOutputs among them; pulumi/pulumi#10744, fixed for
 * registerResource alone in #13070). The operation's outcome is the CLI's, which the engine reports;
 * the rejection adds nothing to it.
 */
export function isAbandonedProgramCall(reason: unknown): boolean {
  if (!(reason instanceof Error)) {
    return false;
  }
  const { code, details } = reason as Error & { code?: unknown; details?: unknown };
  return typeof code === "number" && GRPC_ENGINE_GONE.has(code) && ENGINE_GONE.test(`${reason.message} ${typeof details === "string" ? details : ""}`);
}
