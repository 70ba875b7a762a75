import fastifySwagger from "@fastify/swagger";
import { jsonSchemaTransform } from "fastify-type-provider-zod";
import fastifyPlugin from "fastify-plugin";

/**
 * /openapi.json, made from the routes' own schemas (STYLE.md 13); app-wide, so registered before
 * every route it documents.
 */
export const openapi = fastifyPlugin(async (app) => {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "switch-vaas automation service", version: "1" },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    transform: (document) => {
      const transformed = jsonSchemaTransform(document);
      // The transform keeps a response's description and content only; a response's headers (Retry-After) are the route's own.
      const given = (document.schema as { response?: Record<string, { headers?: unknown }> } | undefined)?.response ?? {};
      const documented = (transformed.schema as { response?: Record<string, Record<string, unknown>> }).response ?? {};
      for (const [status, response] of Object.entries(given)) {
        if (response.headers !== undefined && documented[status] !== undefined) {
          documented[status].headers = response.headers;
        }
      }
      return transformed;
    },
  });
  app.get("/openapi.json", { schema: { hide: true } }, () => app.swagger());
});
