import type { FastifyPluginAsync, FastifyPluginOptions } from "fastify";

/**
 * A plugin made the app's own rather than a context of its own: its hooks, handlers, parsers and
 * decorators reach every route registered after it, not only its own. fastify-plugin does this by the same
 * hidden property (https://fastify.dev/docs/latest/Reference/Plugins/#handle-the-scope), which is
 * used here because the package does not declare fastify-plugin as a dependency.
 */
export function appWide<Options extends FastifyPluginOptions = Record<never, never>>(plugin: FastifyPluginAsync<Options>): FastifyPluginAsync<Options> {
  return Object.assign(plugin, { [Symbol.for("skip-override")]: true });
}
