import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROLES } from "../../domain/wae/model.ts";
import { roleForPath } from "../../components/cdn-pop/content.ts";
import { STATUS_PATH, edgeConfig, loadBalancerConfig, midCacheConfig } from "../../components/cdn-pop/nginx.ts";
import { nginxTest } from "../support/nginx.ts";
import { poll } from "../support/poll.ts";
import { LOCAL, type LoopbackPop, startLoopbackPop } from "../support/pop.ts";

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
  let pop: LoopbackPop;
  const large = randomBytes(3 * 1024 * 1024 + 12345);

  beforeAll(async () => {
    pop = await startLoopbackPop({
      "img/logo.png": randomBytes(10_000),
      "img/hero.png": randomBytes(20_000),
      "docs/manual.pdf": large,
      "vod/movie/index.m3u8": "#EXTM3U\n#EXT-X-TARGETDURATION:4\nseg1.ts\n",
      "vod/movie/seg1.ts": randomBytes(50_000),
      "live/channel/index.m3u8": "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\nseg1.ts\n",
      "live/channel/seg1.ts": randomBytes(50_000),
    });
  });

  afterAll(async () => {
    await pop.stop();
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`http://${LOCAL}:${pop.lbPort}${path}`, { headers });
  /**
   * Requests for `path` the origin has logged, once there are at least `count`: nginx writes a log
   * line after it has sent the response, so the client can hold the answer before its line is there.
   */
  const originSaw = (path: string, count: number) =>
    poll(
      `the origin did not log ${count} requests for ${path}`,
      async () =>
        readFileSync(pop.originLog, "utf8")
          .split("\n")
          .filter((line) => line.startsWith(`${path}|`)),
      (lines) => lines.length >= count,
      5_000,
    );

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
    expect(await originSaw("/img/hero.png", 1)).toHaveLength(1);
  });

  it("never caches the live playlist: every request reaches the origin", async () => {
    for (let i = 0; i < 3; i++) {
      const response = await get("/live/channel/index.m3u8");
      expect(response.headers.get("x-cache-status")).toBe("BYPASS");
      expect(await response.text()).toContain("#EXTM3U");
    }
    expect(await originSaw("/live/channel/index.m3u8", 3)).toHaveLength(3);
  });

  it("serves large files by byte range, fetching 1 MiB slices from upstream", async () => {
    const response = await get("/docs/manual.pdf", { Range: "bytes=1048570-1048589" });
    expect(response.status).toBe(206);
    expect(response.headers.get("content-range")).toBe(`bytes 1048570-1048589/${large.length}`);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(large.subarray(1048570, 1048590));
    const ranges = (await originSaw("/docs/manual.pdf", 2)).map((line) => line.split("|")[1]);
    expect(ranges).toContain("bytes=1048576-2097151");
    // Slices all the way: the origin never sent the whole file.
    expect(ranges).not.toContain("-");
  });

  it("answers the instance manager's status request on the edge, counting requests", async () => {
    const status = await (await fetch(`http://${LOCAL}:${pop.edgePorts.small}${STATUS_PATH}`)).text();
    expect(status).toMatch(/^Active connections: \d+/);
    expect(status).toMatch(/\n\s*\d+ \d+ \d+/);
  });
});
