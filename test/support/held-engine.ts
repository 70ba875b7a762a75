import type { Engine, EngineEvent, OperationOptions, StackConfigMap, StackOutputs, StackSpec } from "../../automation/engine/engine.ts";
import { poll } from "./poll.ts";

/**
 * An engine whose every call ends when the test says, for the runner's and its owners' tests: each
 * race is set up exactly. It reports one progress step at once, whatever the call.
 */

export interface Call {
  kind: "up" | "destroy" | "refresh" | "cancel";
  stack: string;
  /** An `up`'s config, as its owner gave it. */
  config?: StackConfigMap;
  signal?: AbortSignal;
  /** Ends the call: `events` are reported first, as an engine reports what it changed before it returns. */
  finish: (outcome: { outputs?: StackOutputs; error?: Error; events?: EngineEvent[] }) => void;
}

/** An engine whose calls wait for the test: `next()` is the next call it received. */
export class HeldEngine implements Engine {
  readonly kind = "offline" as const;
  readonly calls: Call[] = [];
  private seen = 0;

  up(spec: StackSpec, options: OperationOptions = {}): Promise<StackOutputs> {
    return this.hold("up", spec.stack, options, spec.config) as Promise<StackOutputs>;
  }
  destroy(stack: string, options: OperationOptions = {}): Promise<void> {
    return this.hold("destroy", stack, options) as Promise<void>;
  }
  refresh(stack: string, options: OperationOptions = {}): Promise<void> {
    return this.hold("refresh", stack, options) as Promise<void>;
  }
  cancel(): Promise<void> {
    return Promise.resolve();
  }
  outputs(): Promise<StackOutputs | undefined> {
    return Promise.resolve(undefined);
  }
  stacks(): Promise<string[]> {
    return Promise.resolve([]);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The next call the engine received, once it has. */
  async next(): Promise<Call> {
    const call = await poll("the engine's next call", () => Promise.resolve(this.calls[this.seen]), (found) => found !== undefined, 5000);
    this.seen++;
    return call!;
  }

  private hold(kind: Call["kind"], stack: string, options: OperationOptions, config?: StackConfigMap): Promise<unknown> {
    return new Promise((resolve, reject) => {
      options.onEvent?.({ type: "progress", done: 1, total: 4 });
      // Whatever its signal says: the test decides how, and when, each call ends.
      const finish: Call["finish"] = ({ outputs, error, events = [] }) => {
        for (const event of events) {
          options.onEvent?.(event);
        }
        if (error === undefined) {
          resolve(outputs);
        } else {
          reject(error);
        }
      };
      this.calls.push({ kind, stack, ...(config === undefined ? {} : { config }), ...(options.signal === undefined ? {} : { signal: options.signal }), finish });
    });
  }
}
