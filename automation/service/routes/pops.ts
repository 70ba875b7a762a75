import type { FastifyError } from "fastify";
import type { FastifyPluginAsyncZod, ZodTypeProvider } from "fastify-type-provider-zod";
import type { z } from "zod";
import { NotFoundError } from "../../../domain/errors.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER } from "../../../domain/wae/signature.ts";
import type { DecisionView, PopLoops, PopView } from "../loops/pop-loop.ts";
import { POPS_VARIABLE } from "../loops/pop-config.ts";
import { DEFAULT_MAX_BYTES, DEFAULT_WINDOW_SECONDS, REFUSAL_STATUS } from "../loops/report-admission.ts";
import { BODY_MEDIA_TYPE, problemBody, problemResponses, sendProblem } from "../plugins/problems.ts";
import {
  DEFAULT_LIST_LIMIT,
  popDecisionList,
  popDecisionView,
  popDecisionsQuery,
  popList,
  popParams,
  popView,
  reportAccepted,
  reportDuplicate,
} from "../schemas.ts";

/**
 * The PoPs the service runs the loop for (loops/pop-loop.ts): for admins, each PoP as it runs, its
 * decisions, and a rebalance now; for each host's instance manager, its reports. Every route is
 * registered whether or not SWITCH_POPS names a PoP: without one the list is empty and a PoP is
 * not found, which says so.
 */

export interface PopRouteOptions {
  /** The PoPs' loops; undefined when SWITCH_POPS names none. */
  pops: PopLoops | undefined;
}

/** What a report's refusal may say about the body's size: admitReport's words, for a body Fastify stopped reading. */
const OVERSIZED = `the body is more than the ${DEFAULT_MAX_BYTES} bytes a report may have; a report is a few hundred bytes`;

export const popRoutes: FastifyPluginAsyncZod<PopRouteOptions> = async (app, { pops }) => {
  /** The loops of a PoP the service serves; a NotFoundError (404) names why not. */
  const served = (pop: string): PopLoops => {
    if (pops === undefined) {
      throw new NotFoundError(`the service runs no PoP: ${POPS_VARIABLE} names none; set it to the PoPs' stack files (e.g. stacks/Pulumi.pop-vienna.yaml) and restart`);
    }
    if (!pops.has(pop)) {
      // Said the same to any caller: the reports route is open to callers without a token.
      throw new NotFoundError(`no PoP ${pop} is served here; GET /v1/pops lists the PoPs of ${POPS_VARIABLE}`);
    }
    return pops;
  };

  app.get(
    "/v1/pops",
    { config: { admin: true }, schema: { summary: "The PoPs the service runs the loop for (admins)", response: { 200: popList, ...problemResponses } } },
    () => ({
      pops: (pops?.names() ?? []).map((pop) => {
        const { name, stack, hosts, layout, pendingOperation, lastDecision } = viewOf(pops!.view(pop));
        return {
          name,
          stack,
          hosts,
          layout,
          ...(pendingOperation === undefined ? {} : { pendingOperation }),
          ...(lastDecision === undefined
            ? {}
            : { lastDecision: { id: lastDecision.id, decidedAt: lastDecision.decidedAt, outcome: lastDecision.outcome, ...(lastDecision.reason === undefined ? {} : { reason: lastDecision.reason }) } }),
        };
      }),
    }),
  );

  app.get(
    "/v1/pops/:pop",
    {
      config: { admin: true },
      schema: {
        summary: "A PoP as it runs (admins): its layout and addresses, its newest decision, each host's latest report, the up in flight",
        params: popParams,
        response: { 200: popView, ...problemResponses },
      },
    },
    (request) => viewOf(served(request.params.pop).view(request.params.pop)),
  );

  app.get(
    "/v1/pops/:pop/decisions",
    {
      config: { admin: true },
      schema: { summary: "A PoP's decisions, newest first (admins)", params: popParams, querystring: popDecisionsQuery, response: { 200: popDecisionList, ...problemResponses } },
    },
    (request) => {
      const { pop } = request.params;
      const limit = request.query.limit ?? DEFAULT_LIST_LIMIT;
      const { before } = request.query;
      const page = served(pop).decisions(pop, { limit, ...(before === undefined ? {} : { before }) });
      const next = page.next === undefined ? undefined : `/v1/pops/${pop}/decisions?${new URLSearchParams({ limit: String(limit), before: String(page.next) }).toString()}`;
      return { decisions: page.decisions.map(decisionOf), ...(next === undefined ? {} : { next }) };
    },
  );

  app.post(
    "/v1/pops/:pop/rebalance",
    {
      config: { admin: true },
      schema: {
        summary: "Decide the PoP's layout now (admins), with no persistence asked of a change; the decision says what became of it",
        params: popParams,
        response: { 202: popDecisionView, ...problemResponses },
      },
    },
    (request, reply) => {
      const decision = served(request.params.pop).rebalance(request.params.pop);
      reply.code(202);
      return decisionOf(decision);
    },
  );

  // In a context of its own: the reports route reads its body as bytes, which no other route does.
  await app.register(async (context) => {
    const reports = context.withTypeProvider<ZodTypeProvider>();
    // The signature is over the exact bytes sent, so the body reaches the handler unparsed; the
    // loop's admission decodes and parses it once it knows whose it is. No larger body is read.
    reports.removeAllContentTypeParsers();
    reports.addContentTypeParser(BODY_MEDIA_TYPE, { parseAs: "buffer", bodyLimit: DEFAULT_MAX_BYTES }, (_request, body, done) => done(null, body));
    reports.setErrorHandler((error: FastifyError, request, reply) => {
      const { pop } = request.params as { pop: string };
      if (error.code !== "FST_ERR_CTP_BODY_TOO_LARGE" || pops?.has(pop) !== true) {
        // The app's own handler (plugins/problems.ts) answers the rest.
        throw error;
      }
      // Fastify stopped reading the body at the limit, before the handler: counted as admitReport
      // would have counted it.
      pops.countRefusal(pop, "oversized");
      return sendProblem(reply, REFUSAL_STATUS.oversized, OVERSIZED);
    });
    reports.post(
      "/v1/pops/:pop/reports",
      {
        config: { auth: "agent" },
        schema: {
          summary: "A PoP host's report of a period, signed with the host's report key (its instance manager)",
          description:
            "The body is the report as JSON (domain/wae/reports.ts: pop, host, periodStart, periodEnd, cpu, network, requests), at most " +
            `${DEFAULT_MAX_BYTES} bytes. No bearer token: ${TIMESTAMP_HEADER} (Unix seconds at the attempt) and ${SIGNATURE_HEADER} ` +
            `("sha256=" and the hex HMAC-SHA256, with the host's key, of "<timestamp>.<body>") authenticate it. A resend of the same bytes is 200; ` +
            `401 is a signature that does not verify, or a timestamp more than ${DEFAULT_WINDOW_SECONDS} s off; 409 a period the service holds another report for, ` +
            "or one overlapping the host's last; 422 a period the loop has decided already.",
          params: popParams,
          // The route's only callers are agents: the signature headers are their proof, checked by the handler.
          security: [],
          response: { 202: reportAccepted, 200: reportDuplicate, ...problemResponses, 413: problemBody, 415: problemBody, 422: problemBody },
        },
      },
      async (request, reply) => {
        const { pop } = request.params;
        const loops = served(pop);
        // No body at all (no Content-Type) is an empty one, which the admission refuses as any other.
        const body = Buffer.isBuffer(request.body) ? request.body : new Uint8Array();
        const admission = loops.admit(pop, body, request.headers);
        if (admission.outcome === "accepted") {
          reply.code(202);
          return { status: "accepted" as const };
        }
        if (admission.outcome === "duplicate") {
          reply.code(200);
          return { status: "duplicate" as const };
        }
        // The reason stays with the loop's metrics: told to the caller, it would tell an unknown host from a forged signature.
        return sendProblem(reply, admission.status, admission.detail);
      },
    );
  });
};

/** A PoP as the API shows it: decisions typed, and hosts that never reported left out of lastReports. */
function viewOf(view: PopView): z.input<typeof popView> {
  const { lastDecision, lastReports, ...rest } = view;
  return {
    ...rest,
    ...(lastDecision === undefined ? {} : { lastDecision: decisionOf(lastDecision) }),
    lastReports: Object.fromEntries(Object.entries(lastReports).filter((entry): entry is [string, string] => entry[1] !== undefined)),
  };
}

/** A decision as the API shows it: what it chose, typed, or nothing when it chose nothing (held before computing). */
function decisionOf(decision: DecisionView): z.input<typeof popDecisionView> {
  const { layout, ...rest } = decision;
  return { ...rest, ...(isChosen(layout) ? { chosen: { layout: layout.layout, addresses: layout.addresses } } : {}) };
}

function isChosen(layout: DecisionView["layout"]): layout is { layout: z.input<typeof popView>["layout"]; addresses: Record<string, string> } {
  return typeof layout.layout === "object" && layout.layout !== null && typeof layout.addresses === "object" && layout.addresses !== null;
}
