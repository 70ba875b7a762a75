import { EventSource } from "eventsource";
import type { z } from "zod";
import type { EventType } from "../../domain/records.ts";
import type {
  clusterList,
  conferenceList,
  conferenceRequest,
  conferenceView,
  createdView,
  listQuery,
  popDecisionList,
  popDecisionView,
  popDecisionsQuery,
  popList,
  popView,
  problem,
} from "../service/schemas.ts";
import type { decisionRecord } from "../../domain/records.ts";

/**
 * A typed client of the automation service for programs, and what switchctl is built on. Its
 * types come from the service's own route schemas, so the two cannot drift apart.
 */

export type ConferenceRequest = z.input<typeof conferenceRequest>;
export type Conference = z.output<typeof conferenceView>;
export type Created = z.output<typeof createdView>;
export type Decision = z.output<typeof decisionRecord>;
export type Clusters = z.output<typeof clusterList>;
export type Problem = z.output<typeof problem>;
export type ListQuery = z.output<typeof listQuery>;
export type PopSummary = z.output<typeof popList>["pops"][number];
export type Pop = z.output<typeof popView>;
export type PopDecision = z.output<typeof popDecisionView>;
export type PopDecisionPage = z.output<typeof popDecisionList>;
export type PopDecisionsQuery = z.output<typeof popDecisionsQuery>;

/** One event of a conference's stream. */
export interface ConferenceEvent {
  id: string;
  type: EventType;
  data: Record<string, unknown>;
}

/** The service refused or failed a request: its problem details. */
export class ServiceError extends Error {
  override readonly name = "ServiceError";
  constructor(readonly problem: Problem) {
    super(problem.errors?.length ? problem.errors.map((entry) => `${entry.field} ${entry.message}`).join("\n") : (problem.detail ?? problem.title));
  }
}

export interface ClientOptions {
  /** An absolute http(s) URL, e.g. http://127.0.0.1:8080 */
  url: string;
  token: string;
}

/**
 * Whether `url` can be the service's address: an absolute http: or https: URL. Without a scheme,
 * "127.0.0.1:8080" is no URL and "localhost:8080" one of the scheme "localhost:", and either
 * failed every request as a service that "did not answer".
 */
export function isServiceUrl(url: string): boolean {
  const protocol = URL.parse(url)?.protocol;
  return protocol === "http:" || protocol === "https:";
}

const TERMINAL_EVENTS: readonly EventType[] = ["stopped", "failed"];

export class SwitchClient {
  constructor(private readonly options: ClientOptions) {
    if (!isServiceUrl(options.url)) {
      throw new TypeError(`url ${JSON.stringify(options.url)} is not an absolute http(s) URL; give e.g. http://127.0.0.1:8080`);
    }
  }

  private async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    let response: Response;
    try {
      response = await fetch(new URL(path, this.options.url), {
        method,
        headers: { authorization: `Bearer ${this.options.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (error) {
      throw new Error(`the service at ${this.options.url} did not answer (${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}); is it running? (npm start)`);
    }
    const text = await response.text();
    const parsed = text === "" ? undefined : (JSON.parse(text) as unknown);
    if (!response.ok) {
      throw new ServiceError((parsed as Problem | undefined) ?? { type: "about:blank", title: response.statusText, status: response.status });
    }
    return parsed as T;
  }

  create(request: ConferenceRequest, options: { idempotencyKey?: string } = {}): Promise<Created> {
    return this.request("POST", "/v1/conferences", request, options.idempotencyKey === undefined ? {} : { "idempotency-key": options.idempotencyKey });
  }

  get(id: string): Promise<Conference> {
    return this.request("GET", `/v1/conferences/${encodeURIComponent(id)}`);
  }

  async list(query: ListQuery = {}): Promise<Conference[]> {
    const search = new URLSearchParams();
    if (query.state !== undefined) {
      search.set("state", query.state);
    }
    if (query.limit !== undefined) {
      search.set("limit", String(query.limit));
    }
    const { conferences } = await this.request<z.output<typeof conferenceList>>("GET", `/v1/conferences${search.size > 0 ? `?${search.toString()}` : ""}`);
    return conferences;
  }

  stop(id: string): Promise<Conference> {
    return this.request("DELETE", `/v1/conferences/${encodeURIComponent(id)}`);
  }

  place(request: ConferenceRequest): Promise<Decision> {
    return this.request("POST", "/v1/placements", request);
  }

  clusters(): Promise<Clusters> {
    return this.request("GET", "/v1/clusters");
  }

  /** The PoPs the service runs the loop for (admins). */
  async pops(): Promise<PopSummary[]> {
    const { pops } = await this.request<z.output<typeof popList>>("GET", "/v1/pops");
    return pops;
  }

  /** A PoP as it runs (admins). */
  pop(name: string): Promise<Pop> {
    return this.request("GET", `/v1/pops/${encodeURIComponent(name)}`);
  }

  /** One page of a PoP's decisions, newest first (admins); `next` is the URL of the page after it. */
  popDecisions(name: string, query: PopDecisionsQuery = {}): Promise<PopDecisionPage> {
    const search = new URLSearchParams();
    if (query.limit !== undefined) {
      search.set("limit", String(query.limit));
    }
    if (query.before !== undefined) {
      search.set("before", String(query.before));
    }
    return this.request("GET", `/v1/pops/${encodeURIComponent(name)}/decisions${search.size > 0 ? `?${search.toString()}` : ""}`);
  }

  /** Decides a PoP's layout now (admins); the decision says what became of it. */
  rebalance(name: string): Promise<PopDecision> {
    return this.request("POST", `/v1/pops/${encodeURIComponent(name)}/rebalance`);
  }

  /**
   * Follows a conference's events until `until` says to stop (by default: stopped or failed) or
   * `signal` aborts; reconnects after a dropped connection, resuming after the last event received.
   */
  async *events(id: string, options: { until?: (event: ConferenceEvent) => boolean; signal?: AbortSignal } = {}): AsyncGenerator<ConferenceEvent> {
    const until = options.until ?? ((event) => TERMINAL_EVENTS.includes(event.type));
    const queue: ConferenceEvent[] = [];
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const source = new EventSource(new URL(`/v1/conferences/${encodeURIComponent(id)}/events`, this.options.url), {
      fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, authorization: `Bearer ${this.options.token}` } }),
    });
    const push = (event: MessageEvent) => {
      queue.push({ id: event.lastEventId, type: event.type as EventType, data: JSON.parse(event.data as string) as Record<string, unknown> });
      wake?.();
    };
    for (const type of ["placed", "queued", "deploying", "ready", "failed", "stopping", "stopped"] satisfies EventType[]) {
      source.addEventListener(type, push);
    }
    let ended = false;
    source.addEventListener("error", (event) => {
      // 204: the conference ended and nothing is left to send. A refusal (401, 404) is final; a
      // dropped connection is retried by EventSource itself.
      if (event.code === 204) {
        ended = true;
        wake?.();
      } else if (event.code !== undefined && event.code >= 400) {
        failure = new Error(`the event stream was refused (HTTP ${event.code}): ${event.message ?? ""}`.trim());
        wake?.();
      }
    });
    const abort = () => wake?.();
    options.signal?.addEventListener("abort", abort);
    try {
      for (;;) {
        const event = queue.shift();
        if (event !== undefined) {
          yield event;
          if (until(event)) {
            return;
          }
          continue;
        }
        if (failure !== undefined) {
          throw failure;
        }
        if (options.signal?.aborted || ended) {
          return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      options.signal?.removeEventListener("abort", abort);
      source.close();
    }
  }
}
