import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import Negotiator from "negotiator";
import { z } from "zod";
import { TERMINAL_STATES } from "../../../domain/conference-lifecycle.ts";
import { conferenceName } from "../../../domain/contracts/conference.ts";
import type { EventRecord } from "../../store/records.ts";
import type { ConferenceRecord, Store } from "../../store/store.ts";
import type { ConferenceManager } from "../conferences.ts";
import type { ServiceLimits } from "../environment.ts";
import { problemBody, problemResponses, sendProblem } from "../plugins/problems.ts";
import {
  DEFAULT_LIST_LIMIT,
  conferenceList,
  conferenceParams,
  conferenceRequest,
  conferenceView,
  createdView,
  encodeCursor,
  eventsHeaders,
  idempotencyHeaders,
  listQuery,
  streamEvent,
} from "../schemas.ts";

/**
 * Conferences: created (placed and sized now, deployed in the background), listed, read, stopped,
 * and followed as Server-Sent Events. An organizer sees their own; an admin sees every one.
 */

/**
 * What a refused event stream's client is told to wait, in seconds. Streams end when their
 * conferences do or their clients go, neither of which is known here; half a minute keeps a
 * client that retries at it from hammering the service.
 */
const STREAM_RETRY_AFTER_S = 30;

/** A refusal to open one more event stream: a problem, and when to try again. */
const streamRefusal = (description: string) => ({
  ...problemBody,
  description,
  headers: { "retry-after": { type: "integer", minimum: 1, description: "Seconds to wait before asking for the stream again" } },
});

export interface ConferenceRouteOptions {
  manager: ConferenceManager;
  store: Store;
  /** How many event streams stay open, per subject and in all. */
  limits: Pick<ServiceLimits, "SWITCH_STREAMS_PER_SUBJECT" | "SWITCH_STREAMS_TOTAL">;
}

export const conferenceRoutes: FastifyPluginAsyncZod<ConferenceRouteOptions> = async (app, { manager, store, limits }) => {
  // Event streams follow a conference for as long as it lives; closing the app ends them.
  const closing = new AbortController();
  app.addHook("preClose", async () => closing.abort());
  const streams = streamSlots(limits.SWITCH_STREAMS_PER_SUBJECT, limits.SWITCH_STREAMS_TOTAL);

  app.post(
    "/v1/conferences",
    {
      schema: {
        summary: "Create a conference: placed and sized now, deployed in the background",
        body: conferenceRequest,
        headers: idempotencyHeaders,
        response: { 202: createdView, ...problemResponses },
      },
    },
    (request, reply) => {
      const conference = manager.create(request.principal!.subject, request.body, request.headers["idempotency-key"]);
      const self = `/v1/conferences/${conference.id}`;
      reply.code(202).header("location", self);
      return { id: conference.id, state: conference.state, decision: conference.decision, links: { self, events: `${self}/events` } };
    },
  );

  app.get(
    "/v1/conferences",
    { schema: { summary: "Your conferences (every one, for admins), newest first", querystring: listQuery, response: { 200: conferenceList, ...problemResponses } } },
    (request) => {
      const { state, cursor } = request.query;
      const limit = request.query.limit ?? DEFAULT_LIST_LIMIT;
      const page = manager.list(viewerOf(request), { ...(state === undefined ? {} : { state }), limit, ...(cursor === undefined ? {} : { after: cursor }) });
      const next = page.next === undefined ? undefined : `/v1/conferences?${new URLSearchParams({ ...(state === undefined ? {} : { state }), limit: String(limit), cursor: encodeCursor(page.next) }).toString()}`;
      return { conferences: page.conferences.map(viewOf), ...(next === undefined ? {} : { next }) };
    },
  );

  app.get(
    "/v1/conferences/:id",
    { schema: { summary: "A conference and its progress", params: conferenceParams, response: { 200: conferenceView, ...problemResponses } } },
    (request) => viewOf(manager.get(request.params.id, viewerOf(request))),
  );

  app.delete(
    "/v1/conferences/:id",
    { schema: { summary: "Stop a conference (idempotent); a deployment in flight is cancelled", params: conferenceParams, response: { 202: conferenceView, ...problemResponses } } },
    (request, reply) => {
      const conference = viewOf(manager.stop(request.params.id, viewerOf(request)));
      reply.code(202);
      return conference;
    },
  );

  app.get(
    "/v1/conferences/:id/events",
    {
      // "manual": the preHandler below negotiates, so that a refusal is a problem like every other.
      sse: { kind: "manual" },
      schema: {
        summary: "The conference's progress as Server-Sent Events (placed, queued, deploying, ready, failed, stopping, stopped); Last-Event-ID replays",
        params: conferenceParams,
        headers: eventsHeaders,
        produces: ["text/event-stream"],
        response: {
          200: { description: "One event per change; the stream ends after stopped or failed", content: { "text/event-stream": { schema: streamEvent } } },
          // The HTML standard's signal to an EventSource to stop reconnecting.
          204: z.null().describe("The conference has ended and every event up to Last-Event-ID was received"),
          ...problemResponses,
          406: problemBody,
          429: streamRefusal("The token's subject has as many event streams open as one may (SWITCH_STREAMS_PER_SUBJECT); close one, or retry later"),
          503: streamRefusal("The service has as many event streams open as it serves (SWITCH_STREAMS_TOTAL); retry later"),
        },
      },
      preHandler: async (request, reply) => {
        if (!acceptsEventStream(request)) {
          return sendProblem(reply, 406, "this route only streams text/event-stream; send Accept: text/event-stream, or no Accept header");
        }
      },
    },
    async (request, reply) => {
      const conference = manager.get(request.params.id, viewerOf(request));
      const after = Number(request.headers["last-event-id"] ?? 0);
      if (hasEnded(store, conference.id, after)) {
        return reply.code(204).send(null);
      }
      if (request.method === "HEAD") {
        // RFC 9110 §9.3.2: the head a GET would answer, without its content; a stream's content has no end to wait for.
        reply.sse.sendHeaders();
        reply.raw.end();
        return;
      }
      const subject = request.principal!.subject;
      const slot = streams.take(subject);
      if (slot === "subject" || slot === "total") {
        void reply.header("retry-after", String(STREAM_RETRY_AFTER_S));
        return slot === "subject"
          ? sendProblem(reply, 429, `${subject} has ${limits.SWITCH_STREAMS_PER_SUBJECT} event streams open, as many as one subject may; close one, or retry after ${STREAM_RETRY_AFTER_S} s`)
          : sendProblem(reply, 503, `the service has ${limits.SWITCH_STREAMS_TOTAL} event streams open, as many as it serves; retry after ${STREAM_RETRY_AFTER_S} s`);
      }
      // The connection's end gives the slot back, whether the stream ended or its client went.
      reply.raw.once("close", slot);
      try {
        if (!(await streamEvents(store, conference, after, reply, closing.signal))) {
          return reply.code(204).send(null);
        }
      } finally {
        slot();
      }
    },
  );
};

function viewerOf(request: FastifyRequest): { subject: string; admin: boolean } {
  return { subject: request.principal!.subject, admin: request.principal!.role === "admin" };
}

/** A conference as the API shows it: the record without the stack config (the decision says it). */
function viewOf(conference: ConferenceRecord): z.input<typeof conferenceView> {
  const { spec: _spec, ...view } = conference;
  return view;
}

/**
 * Event streams open now, per subject and in all, each within its cap. `take` answers the slot's
 * release (safe to call more than once), or which cap is reached.
 */
function streamSlots(perSubject: number, total: number): { take: (subject: string) => (() => void) | "subject" | "total" } {
  const open = new Map<string, number>();
  let all = 0;
  return {
    take: (subject) => {
      const mine = open.get(subject) ?? 0;
      if (mine >= perSubject) {
        return "subject";
      }
      if (all >= total) {
        return "total";
      }
      open.set(subject, mine + 1);
      all++;
      let released = false;
      return () => {
        if (released) {
          return;
        }
        released = true;
        all--;
        const left = open.get(subject)! - 1;
        if (left === 0) {
          open.delete(subject);
        } else {
          open.set(subject, left);
        }
      };
    },
  };
}

/** Whether a stream of the conference's events after `after` would have nothing to send: it has ended, and `after` was its last event or later. */
function hasEnded(store: Store, conferenceId: string, after: number): boolean {
  return TERMINAL_STATES.includes(store.conference(conferenceId)!.state) && store.eventsAfter(conferenceName(conferenceId), after).length === 0;
}

/** Whether the request's Accept header admits text/event-stream (RFC 9110 §12.5.1); none admits any type. */
function acceptsEventStream(request: FastifyRequest): boolean {
  return new Negotiator(request).mediaType(["text/event-stream"]) !== undefined;
}

/**
 * Replays the conference's events after `after` from the store, then follows new ones until the
 * conference ends or the client goes. Subscribing before the replay and skipping what the replay
 * sent loses nothing between the two. False when there was nothing to stream: the conference had
 * ended and `after` was its last event or later.
 */
async function streamEvents(store: Store, conference: ConferenceRecord, after: number, reply: FastifyReply, closing: AbortSignal): Promise<boolean> {
  const sse = reply.sse;
  const live: EventRecord[] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = store.onEvent((event) => {
    if (event.stack === conferenceName(conference.id)) {
      live.push(event);
      wake?.();
    }
  });
  let closed = closing.aborted;
  let markClosed: () => void = () => undefined;
  // A client that stops reading leaves a send waiting for a drain that never comes; its close ends the wait.
  const whenClosed = new Promise<void>((resolve) => (markClosed = resolve));
  const end = () => {
    closed = true;
    markClosed();
    wake?.();
  };
  sse.onClose(end);
  closing.addEventListener("abort", end, { once: true });
  try {
    let last = after;
    const send = async (event: EventRecord) => {
      if (event.id <= last) {
        return false;
      }
      last = event.id;
      await Promise.race([sse.send({ id: String(event.id), event: event.type, data: { ...event.data, at: event.at } }), whenClosed]);
      return event.type === "stopped" || event.type === "failed";
    };
    for (const event of store.eventsAfter(conferenceName(conference.id), after)) {
      if (await send(event)) {
        return true;
      }
    }
    if (TERMINAL_STATES.includes(store.conference(conference.id)!.state) && live.length === 0) {
      return last !== after;
    }
    // The stream is open now, an event due or not: a client waits on a 200, not on silence.
    sse.sendHeaders();
    // writeHead only queues the head; Node sends it with the first body byte unless flushed.
    reply.raw.flushHeaders();
    while (!closed) {
      const event = live.shift();
      if (event === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      if (await send(event)) {
        return true;
      }
    }
    return true;
  } finally {
    closing.removeEventListener("abort", end);
    unsubscribe();
  }
}
