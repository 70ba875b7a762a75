import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROLES, type Role } from "../../automation/wae/model.ts";
import { roleForPath } from "../../components/cdn-pop/content.ts";
import { STATUS_PATH, edgeConfig, loadBalancerConfig, midCacheConfig } from "../../components/cdn-pop/nginx.ts";
import { type RunningNginx, freePort, nginxTest, originConfig, startNginx } from "../support/nginx.ts";

const LOCAL = "127.0.0.1";

describe("generated nginx configurations pass nginx -t", () => {
  it.each(ROLES)("the %s edge", async (role) => {
    const result = await nginxTest(edgeConfig({ role, listen: { address: LOCAL, port: 8080 }, upstream: "127.0.0.1:8081", statusAllow: ["127.0.0.1"] }));
    expect(result.output).toContain("syntax is ok");
    expect(result.ok).toBe(true);
  });

  it("the mid-cache", async () => {
    expect((await nginxTest(midCacheConfig({ listen: { address: LOCAL, port: 8080 }, origin: "127.0.0.1:9000" }))).ok).toBe(true);
  });

  it.each([
    ["every role running", { small: ["10.0.0.1:80", "10.0.0.2:80"], large: ["10.0.0.3:80"], vod: ["10.0.0.4:80"], live: ["10.0.0.5:80"] }],
    ["a role without edges", { small: ["10.0.0.1:80"], large: [], vod: [], live: [] }],
  ])("the load balancer with %s", async (_case, endpoints) => {
    expect((await nginxTest(loadBalancerConfig({ listen: { address: LOCAL, port: 8080 }, endpoints, fallback: "10.0.0.9:80" }))).ok).toBe(true);
  });

  it("and nginx -t does reject a broken one (the control)", async () => {
    const broken = edgeConfig({ role: "small", listen: { address: LOCAL, port: 8080 }, upstream: "127.0.0.1:8081", statusAllow: ["not-an-address"] });
    expect((await nginxTest(broken)).ok).toBe(false);
  });
});

describe("a loopback PoP: load balancer, four edges, mid-cache and origin as real nginx processes", () => {
  const running: RunningNginx[] = [];
  let lbPort: number;
  let originLog: string;
  const large = randomBytes(3 * 1024 * 1024 + 12345);

  beforeAll(async () => {
    const root = mkdtempSync(join(tmpdir(), "pop-origin-root-"));
    const files: Record<string, Buffer | string> = {
      "img/logo.png": randomBytes(10_000),
      "img/hero.png": randomBytes(20_000),
      "docs/manual.pdf": large,
      "vod/movie/index.m3u8": "#EXTM3U\n#EXT-X-TARGETDURATION:4\nseg1.ts\n",
      "vod/movie/seg1.ts": randomBytes(50_000),
      "live/channel/index.m3u8": "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\nseg1.ts\n",
      "live/channel/seg1.ts": randomBytes(50_000),
    };
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(root, dirname(path)), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    chmodSync(root, 0o755);

    const [origin, mid, lb, ...edges] = await Promise.all(Array.from({ length: 7 }, () => freePort()));
    const edgePorts = Object.fromEntries(ROLES.map((role, index) => [role, edges[index]!])) as Record<Role, number>;
    const originServer = await startNginx("origin", originConfig(origin!, root), origin!);
    running.push(originServer);
    originLog = join(originServer.prefix, "logs", "access.log");
    running.push(await startNginx("mid", midCacheConfig({ listen: { address: LOCAL, port: mid! }, origin: `${LOCAL}:${origin!}`, workers: 1 }), mid!));
    for (const role of ROLES) {
      running.push(
        await startNginx(
          `edge-${role}`,
          edgeConfig({ role, listen: { address: LOCAL, port: edgePorts[role] }, upstream: `${LOCAL}:${mid!}`, statusAllow: [LOCAL], workers: 1 }),
          edgePorts[role],
        ),
      );
    }
    const endpoints = Object.fromEntries(ROLES.map((role) => [role, [`${LOCAL}:${edgePorts[role]}`]])) as Record<Role, string[]>;
    running.push(await startNginx("lb", loadBalancerConfig({ listen: { address: LOCAL, port: lb! }, endpoints, fallback: `${LOCAL}:${mid!}`, workers: 1 }), lb!));
    lbPort = lb!;
  });

  afterAll(async () => {
    await Promise.all(running.map((server) => server.stop()));
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`http://${LOCAL}:${lbPort}${path}`, { headers });
  /** Requests for `path` the origin has logged (nginx writes its log line when a request ends). */
  const originSaw = (path: string) =>
    readFileSync(originLog, "utf8")
      .split("\n")
      .filter((line) => line.startsWith(`${path}|`));

  it.each([
    ["/img/logo.png", "small"],
    ["/docs/manual.pdf", "large"],
    ["/vod/movie/seg1.ts", "vod"],
    ["/vod/movie/index.m3u8", "vod"],
    ["/live/channel/seg1.ts", "live"],
  ])("sends %s to the %s edge", async (path, role) => {
    const response = await get(path);
    expect(response.status).toBe(200);
    expect(response.headers.get("x-pop-role")).toBe(role);
    expect(roleForPath(path)).toBe(role);
    await response.arrayBuffer();
  });

  it("serves a repeated request from the edge's cache; the origin sees it once", async () => {
    const first = await get("/img/hero.png");
    await first.arrayBuffer();
    const second = await get("/img/hero.png");
    const body = Buffer.from(await second.arrayBuffer());
    expect(second.headers.get("x-cache-status")).toBe("HIT");
    expect(body).toHaveLength(20_000);
    expect(originSaw("/img/hero.png")).toHaveLength(1);
  });

  it("never caches the live playlist: every request reaches the origin", async () => {
    for (let i = 0; i < 3; i++) {
      const response = await get("/live/channel/index.m3u8");
      expect(response.headers.get("x-cache-status")).toBe("BYPASS");
      expect(await response.text()).toContain("#EXTM3U");
    }
    expect(originSaw("/live/channel/index.m3u8")).toHaveLength(3);
  });

  it("serves large files by byte range, fetching 1 MiB slices from upstream", async () => {
    const response = await get("/docs/manual.pdf", { Range: "bytes=1048570-1048589" });
    expect(response.status).toBe(206);
    expect(response.headers.get("content-range")).toBe(`bytes 1048570-1048589/${large.length}`);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(large.subarray(1048570, 1048590));
    const ranges = originSaw("/docs/manual.pdf").map((line) => line.split("|")[1]);
    expect(ranges).toContain("bytes=1048576-2097151");
    // Slices all the way: the origin never sent the whole file.
    expect(ranges).not.toContain("-");
  });

  it("answers the instance manager's status request on the edge, counting requests", async () => {
    const edgeRole = "small";
    const edge = running.find((server) => server.prefix.includes(`pop-edge-${edgeRole}-`))!;
    const config = readFileSync(join(edge.prefix, "nginx.conf"), "utf8");
    const port = Number(/listen 127\.0\.0\.1:(\d+)/.exec(config)![1]);
    const status = await (await fetch(`http://${LOCAL}:${port}${STATUS_PATH}`)).text();
    expect(status).toMatch(/^Active connections: \d+/);
    expect(status).toMatch(/\n\s*\d+ \d+ \d+/);
  });
});
