import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { decisionRecord } from "../../../domain/records.ts";
import type { ConferenceManager } from "../conferences.ts";
import { problemResponses } from "../plugins/problems.ts";
import { conferenceRequest } from "../schemas.ts";

/** Placements: where a conference would go now, and its size, decided and not kept. */

export interface PlacementRouteOptions {
  manager: Pick<ConferenceManager, "place">;
}

export const placementRoutes: FastifyPluginAsyncZod<PlacementRouteOptions> = async (app, { manager }) => {
  app.post(
    "/v1/placements",
    { schema: { summary: "Where a conference would be placed now, and its size; changes nothing", body: conferenceRequest, response: { 200: decisionRecord, ...problemResponses } } },
    (request) => manager.place(request.body),
  );
};
