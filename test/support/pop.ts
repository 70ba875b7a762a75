import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ROLES, type Role } from "../../domain/wae/model.ts";
import { edgeConfig, loadBalancerConfig, midCacheConfig } from "../../components/cdn-pop/nginx.ts";
import { type RunningNginx, freePort, originConfig, startNginx } from "./nginx.ts";

export const LOCAL = "127.0.0.1";

export interface LoopbackPop {
  lbPort: number;
  originPort: number;
  edgePorts: Record<Role, number>;
  /** The origin's access log: one line per request that reached it, "uri|range". */
  originLog: string;
  /** Edge processes by role, for reading their configuration or status. */
  servers: RunningNginx[];
  stop(): Promise<void>;
}

/**
 * The whole data plane on loopback, every role a real nginx on its own 127.0.0.1 port with the
 * generated configuration: origin (serving `files`), mid-cache, one edge per role, load balancer.
 */
export async function startLoopbackPop(files: Record<string, Buffer | string>, workers: number | "auto" = 1): Promise<LoopbackPop> {
  const root = mkdtempSync(join(tmpdir(), "pop-origin-root-"));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, dirname(path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  chmodSync(root, 0o755);

  const [origin, mid, lb, ...edges] = await Promise.all(Array.from({ length: 3 + ROLES.length }, () => freePort()));
  const edgePorts = Object.fromEntries(ROLES.map((role, index) => [role, edges[index]!])) as Record<Role, number>;
  const servers: RunningNginx[] = [];
  const originServer = await startNginx("origin", originConfig(origin!, root), origin!);
  servers.push(originServer);
  servers.push(await startNginx("mid", midCacheConfig({ listen: { address: LOCAL, port: mid! }, origin: `${LOCAL}:${origin!}`, workers }), mid!));
  for (const role of ROLES) {
    servers.push(
      await startNginx(
        `edge-${role}`,
        edgeConfig({ role, listen: { address: LOCAL, port: edgePorts[role] }, upstream: `${LOCAL}:${mid!}`, statusAllow: [LOCAL], workers }),
        edgePorts[role],
      ),
    );
  }
  const endpoints = Object.fromEntries(ROLES.map((role) => [role, [`${LOCAL}:${edgePorts[role]}`]])) as Record<Role, string[]>;
  servers.push(await startNginx("lb", loadBalancerConfig({ listen: { address: LOCAL, port: lb! }, endpoints, fallback: `${LOCAL}:${mid!}`, workers }), lb!));
  return {
    lbPort: lb!,
    originPort: origin!,
    edgePorts,
    originLog: join(originServer.prefix, "logs", "access.log"),
    servers,
    stop: async () => {
      await Promise.all(servers.map((server) => server.stop()));
    },
  };
}
