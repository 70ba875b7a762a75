import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { OrphanStacks } from "../orphans.ts";
import { problemResponses } from "../plugins/problems.ts";
import { orphanList, orphanParams, orphanView } from "../schemas.ts";

/**
 * Conference stacks no record owns (../orphans.ts), for admins: listed (the backend is scanned
 * again on each call) and destroyed by name. Refusals are the app's problems (a NotFoundError for a
 * stack that is no orphan).
 */

export interface OrphanStackRouteOptions {
  orphans: OrphanStacks;
  /** Where a destroy that fails in the background is reported. */
  onBackgroundError: (error: unknown) => void;
}

export const orphanStackRoutes: FastifyPluginAsyncZod<OrphanStackRouteOptions> = async (app, { orphans, onBackgroundError }) => {
  app.get(
    "/v1/orphan-stacks",
    { config: { admin: true }, schema: { summary: "Conference stacks the backend holds and no record owns (admins)", response: { 200: orphanList, ...problemResponses } } },
    async () => ({ stacks: await orphans.scan() }),
  );
  app.delete(
    "/v1/orphan-stacks/:name",
    {
      config: { admin: true },
      schema: { summary: "Destroy a conference stack no record owns (admins); it leaves the list when destroyed", params: orphanParams, response: { 202: orphanView, ...problemResponses } },
    },
    async (request, reply) => {
      const orphan = await orphans.destroy(request.params.name, onBackgroundError);
      reply.code(202);
      return orphan;
    },
  );
};
