import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../../domain/contracts/project.ts";
import { SECRET_MASK } from "./engine.ts";

/**
 * The offline engine: runs a stack program on Pulumi's mock runtime and records every resource it
 * registers, creating nothing. It answers "what would this stack create?" without a Pulumi CLI,
 * credentials or a cluster. It is never a deployment.
 *
 * Pulumi keeps its runtime state on globalThis, so one process evaluates one program at a time.
 */

/** One resource the program registered. */
export interface Registration {
  /** Type token, e.g. "kubernetes:core/v1:Namespace". */
  type: string;
  /** Pulumi (logical) name. */
  name: string;
  /** False for component resources. */
  custom: boolean;
  /** Reference to the explicit provider ("<provider urn>::<provider id>"), if any. */
  provider?: string;
  /** Inputs as the engine would receive them; secret values keep Pulumi's secret envelope. */
  inputs: Record<string, unknown>;
  /**
   * Its URN as the Pulumi engine makes it (the parent's whole type chain, which the mock monitor's
   * own URNs shorten to the last link): the identity `pulumi up` matches against the last state.
   */
  urn: string;
  /** Its parent's URN, as {@link urn} is made; none for a resource at the top. */
  parent?: string;
  /** The URNs its `aliases` option names, each completed from the resource's own name, type and parent as the engine does. */
  aliases: string[];
  /** Its `ignoreChanges` option: property paths ("data", "spec.replicas") whose changes the engine ignores. */
  ignoreChanges: string[];
  /** Its `replaceOnChanges` option: property paths whose changes replace it. */
  replaceOnChanges: string[];
}

/** The Pulumi name of the provider a registration was created through (its URN ends in "::<name>"). */
export function providerName(registration: Registration): string | undefined {
  return registration.provider?.split("::").at(-2);
}

/** Values a real provider would compute after creating a resource (ids, endpoints), by resource. */
export type ComputedOutputs = (resource: pulumi.runtime.MockResourceArgs) => Record<string, unknown>;

/** The id a real provider would give a new resource, or undefined for the mocks' own ("<name>-id"). */
export type ComputedId = (resource: pulumi.runtime.MockResourceArgs) => string | undefined;

export const STACK_REFERENCE = "pulumi:pulumi:StackReference";

/** Something the offline engine cannot answer. */
export class OfflineEngineError extends Error {
  override readonly name = "OfflineEngineError";
  /** The SDK reports a failed invoke with the gRPC error's `details`, not its message. */
  readonly details = this.message;
}

/** Told of each registration as the program makes it, with how many there are so far. */
export type OnRegistration = (registration: Registration, count: number) => void;

/** Mocks that record registrations and refuse invokes and stack references nobody has answered. */
export class RecordingMocks implements pulumi.runtime.Mocks {
  readonly registrations: Registration[] = [];
  /** The stacks whose references the program made and nobody answered, by the name it gave. */
  readonly unansweredReferences: string[] = [];
  /** Who the registration being made is (see {@link identifyRegistrations}); the mocks' interface carries no parent or aliases. */
  identity: Identity | undefined;

  constructor(
    private readonly computed: ComputedOutputs = () => ({}),
    private readonly onRegistration: OnRegistration = () => undefined,
    private readonly computedId: ComputedId = () => undefined,
  ) {}

  newResource(args: pulumi.runtime.MockResourceArgs): pulumi.runtime.MockResourceResult {
    const computed = this.computed(args);
    if (args.type === STACK_REFERENCE && computed.outputs === undefined) {
      this.unansweredReferences.push(String((args.inputs as { name?: unknown }).name));
      throw new OfflineEngineError(
        `offline engine: stack "${String((args.inputs as { name?: unknown }).name)}" cannot be read offline; this program needs the referenced stack's real outputs`,
      );
    }
    const identity = this.identity ?? { urn: urnOf(args.type, args.name, undefined), aliases: [], ignoreChanges: [], replaceOnChanges: [] };
    this.identity = undefined;
    const registration: Registration = {
      type: args.type,
      name: args.name,
      custom: args.custom ?? true,
      ...(args.provider ? { provider: args.provider } : {}),
      inputs: args.inputs as Record<string, unknown>,
      ...identity,
    };
    this.registrations.push(registration);
    this.onRegistration(registration, this.registrations.length);
    // `id` is set only when a resource is read by id; new resources arrive with an empty one.
    const id = args.id === undefined || args.id === "" ? (this.computedId(args) ?? `${args.name}-id`) : args.id;
    return { id, state: { ...(args.inputs as Record<string, unknown>), ...computed } };
  }

  call(args: pulumi.runtime.MockCallArgs): pulumi.runtime.MockCallResult {
    throw new OfflineEngineError(`offline engine: no answer for the invoke "${args.token}"; this program needs a real provider`);
  }
}

export interface OfflineOptions {
  /** Stack config, keys fully qualified ("switch-vaas:sites"), values as `pulumi config` stores them (JSON for objects). */
  config?: Record<string, string>;
  /** Which config keys are secrets. */
  secretKeys?: string[];
  /** Stack name. Defaults to "offline". */
  stack?: string;
  /**
   * Evaluate as a preview: provider-computed values stay unknown and code depending on them does not
   * run. Defaults to true, the honest picture when nothing exists.
   */
  preview?: boolean;
  /** The mocks to record with; pass your own to read registrations after a failure. Defaults to fresh RecordingMocks. */
  mocks?: RecordingMocks;
}

export interface OfflineResult<T> {
  registrations: Registration[];
  /** What the program returned: its stack outputs, still as Outputs. */
  outputs: T;
}

const DEFAULT_STACK = "offline";

/**
 * Runs `program` on the mock runtime and waits until every registration it started has finished.
 * Rejects with the program's error, or with the first error that surfaced outside it (a failed
 * registration, a throwing `apply`), which Pulumi's runtime would otherwise leave unhandled.
 */
export async function evaluateOffline<T>(program: () => Promise<T>, options: OfflineOptions = {}): Promise<OfflineResult<T>> {
  const mocks = options.mocks ?? new RecordingMocks();
  const stray: unknown[] = [];
  const collect = (reason: unknown) => stray.push(reason);
  process.on("unhandledRejection", collect);
  pulumi.runtime.setAllConfig(options.config ?? {}, options.secretKeys ?? []);
  await pulumi.runtime.setMocks(mocks, PROJECT, options.stack ?? DEFAULT_STACK, options.preview ?? true);
  identifyRegistrations(mocks);
  try {
    let outputs: T;
    try {
      outputs = await program();
    } finally {
      // Drains the registrations still in flight, after a failure too; the next evaluation
      // installs a fresh monitor.
      await pulumi.runtime.disconnect();
      // Node reports unhandled rejections after the current turn; let it.
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (stray.length > 0) {
      throw stray[0];
    }
    return { registrations: mocks.registrations, outputs };
  } finally {
    process.off("unhandledRejection", collect);
  }
}

/** A registration's place in the stack: see {@link Registration}. */
type Identity = Pick<Registration, "urn" | "parent" | "aliases" | "ignoreChanges" | "replaceOnChanges">;

/** The part of a registration request read here (proto/resource_pb.d.ts RegisterResourceRequest). */
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getAliasesList(): { hasUrn(): boolean; getUrn(): string; getSpec(): AliasSpec | undefined }[];
  getIgnorechangesList(): string[];
  getReplaceonchangesList(): string[];
}
/** proto/alias_pb.d.ts Alias.Spec. */
interface AliasSpec {
  getName(): string;
  getType(): string;
  getStack(): string;
  getProject(): string;
  getParenturn(): string;
  getNoparent(): boolean;
}
type Callback = (error: unknown, response?: { getUrn(): string }) => void;
interface MonitorWithRegistrations {
  registerResource(request: RegisterRequest, callback: Callback): Promise<void>;
}

/** The type a URN names: a child's is its parent's chain and its own, joined by "$". */
function qualifiedTypeOf(urn: string): string {
  return urn.split("::")[2] ?? "";
}

/**
 * A URN as the engine makes it (sdk/go/common/resource/urn.go NewURN). Stack and project are the
 * evaluation's own; an alias may name others.
 */
function urnOf(type: string, name: string, parent: string | undefined, stack = pulumi.getStack(), project = pulumi.getProject()): string {
  const qualified = parent === undefined ? type : `${qualifiedTypeOf(parent)}$${type}`;
  return `urn:pulumi:${stack}::${project}::${qualified}::${name}`;
}

/**
 * Tells the mocks who each registration is: its engine URN, parent, declared aliases and the
 * options that change how it is diffed (ignoreChanges, replaceOnChanges), which the
 * mock monitor's request has and its `newResource` arguments do not. The mock monitor calls
 * `newResource` before it first awaits (runtime/mocks.js registerResource), so the identity set
 * just before is the one it reads; that is checked, so an SDK that changes it fails here by name.
 */
function identifyRegistrations(mocks: RecordingMocks): void {
  const monitor = pulumi.runtime.getMonitor() as unknown as MonitorWithRegistrations;
  const register = monitor.registerResource.bind(monitor);
  // The mock monitor's URN of each resource (what a child's request names as its parent) -> the engine's.
  const engineUrns = new Map<string, string>();
  monitor.registerResource = (request, callback) => {
    const parentGiven = request.getParent();
    const parent = parentGiven === "" ? undefined : (engineUrns.get(parentGiven) ?? parentGiven);
    const urn = urnOf(request.getType(), request.getName(), parent);
    const aliases = request.getAliasesList().map((alias) => {
      const spec = alias.getSpec();
      if (alias.hasUrn() || spec === undefined) {
        return alias.getUrn();
      }
      const aliasParent = spec.getNoparent() ? undefined : spec.getParenturn() === "" ? parent : (engineUrns.get(spec.getParenturn()) ?? spec.getParenturn());
      return urnOf(spec.getType() || request.getType(), spec.getName() || request.getName(), aliasParent, spec.getStack() || undefined, spec.getProject() || undefined);
    });
    mocks.identity = {
      urn,
      ...(parent === undefined ? {} : { parent }),
      aliases,
      ignoreChanges: request.getIgnorechangesList(),
      replaceOnChanges: request.getReplaceonchangesList(),
    };
    const registered = register(request, (error, response) => {
      if (response !== undefined) {
        engineUrns.set(response.getUrn(), urn);
      }
      callback(error, response);
    });
    if (mocks.identity !== undefined) {
      mocks.identity = undefined;
      throw new OfflineEngineError("offline engine: this @pulumi/pulumi's mock monitor no longer calls newResource at once, so resources cannot be told apart by URN; update automation/engine/offline.ts identifyRegistrations");
    }
    return registered;
  };
}

/** Pulumi's envelope for secret values on the wire (sdk/nodejs/runtime/rpc.ts: specialSigKey, specialSecretSig). */
const SIGNATURE_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIGNATURE = "1b47061264138c4ac30d75fd1eb44270";
/** How a preview passes a value that is not known yet. */
const UNKNOWN_KEY = "__pulumiUnknown";

export const UNKNOWN_PLACEHOLDER = "(known after up)";

/** True if `value` is a secret in Pulumi's wire envelope. */
export function isSecretEnvelope(value: unknown): value is { value: unknown } {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>)[SIGNATURE_KEY] === SECRET_SIGNATURE;
}

/** Registration inputs made fit to print: secrets masked, unknowns named. */
export function displayInputs(value: unknown): unknown {
  if (isSecretEnvelope(value)) {
    return SECRET_MASK;
  }
  if (Array.isArray(value)) {
    return value.map(displayInputs);
  }
  if (typeof value === "object" && value !== null) {
    if ((value as Record<string, unknown>)[UNKNOWN_KEY] === true) {
      return UNKNOWN_PLACEHOLDER;
    }
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, displayInputs(inner)]));
  }
  return value;
}

/**
 * Each secret in registration inputs, by its path (segments joined by "."), as `digest` makes it of
 * the secret's value: what tells a changed secret from an unchanged one once both are masked.
 */
export function secretDigests(value: unknown, digest: (text: string) => string): Record<string, string> {
  const found: Record<string, string> = {};
  const visit = (inner: unknown, path: readonly (string | number)[]): void => {
    if (isSecretEnvelope(inner)) {
      found[path.join(".")] = digest(JSON.stringify(inner.value) ?? "undefined");
    } else if (Array.isArray(inner)) {
      inner.forEach((item, i) => visit(item, [...path, i]));
    } else if (typeof inner === "object" && inner !== null) {
      Object.entries(inner).forEach(([key, item]) => visit(item, [...path, key]));
    }
  };
  visit(value, []);
  return found;
}

/**
 * Stack outputs made fit to print: secrets masked, values that are not known name themselves.
 * Call after {@link evaluateOffline} returned, when every Output that can resolve has resolved.
 */
export async function displayOutputs(value: unknown): Promise<unknown> {
  if (pulumi.Output.isInstance(value)) {
    if (await pulumi.isSecret(value)) {
      return SECRET_MASK;
    }
    // An unknown Output never calls apply; everything known has settled by now (the RPC queue is
    // drained), so a turn of the event loop is long enough to wait.
    const resolved = await Promise.race([
      new Promise<{ value: unknown }>((resolve) => value.apply((inner) => resolve({ value: inner }))),
      new Promise<undefined>((resolve) => setImmediate(() => resolve(undefined))),
    ]);
    return resolved === undefined ? UNKNOWN_PLACEHOLDER : displayOutputs(resolved.value);
  }
  if (Array.isArray(value)) {
    return Promise.all(value.map(displayOutputs));
  }
  if (typeof value === "object" && value !== null && !pulumi.Resource.isInstance(value)) {
    const entries = await Promise.all(Object.entries(value).map(async ([key, inner]) => [key, await displayOutputs(inner)] as const));
    return Object.fromEntries(entries);
  }
  return value;
}
