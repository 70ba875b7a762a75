import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { Resolver } from "node:dns/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dnsmasqConfig } from "../../components/cdn-pop/dns.ts";
import { freePort } from "../support/nginx.ts";

const DNSMASQ = "/usr/sbin/dnsmasq";
const exec = promisify(execFile);
const ZONE = "vienna.cdn.example.org";

describe("the PoP's DNS role, in real dnsmasq", () => {
  let child: ChildProcess;
  let resolver: Resolver;
  let config: string;

  beforeAll(async () => {
    const port = await freePort();
    config = join(mkdtempSync(join(tmpdir(), "pop-dns-")), "dnsmasq.conf");
    writeFileSync(
      config,
      dnsmasqConfig({
        listen: { address: "127.0.0.1", port },
        zone: ZONE,
        loadBalancer: "192.0.2.10",
        midCache: "192.0.2.11",
        edges: { small: ["192.0.2.20", "192.0.2.22", "192.0.2.24"], large: ["192.0.2.23"], vod: ["192.0.2.21"], live: [] },
      }),
    );
    child = spawn(DNSMASQ, ["--keep-in-foreground", `--conf-file=${config}`], { stdio: "ignore" });
    resolver = new Resolver({ timeout: 1000, tries: 1 });
    resolver.setServers([`127.0.0.1:${port}`]);
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await resolver.resolve4(ZONE);
        return;
      } catch {
        await delay(100);
      }
    }
    throw new Error("dnsmasq did not answer");
  });

  afterAll(() => {
    child.kill();
  });

  it("passes dnsmasq's own check", async () => {
    const { stderr } = await exec(DNSMASQ, ["--test", `--conf-file=${config}`]);
    expect(stderr).toContain("syntax check OK");
  });

  it.each([
    [ZONE, ["192.0.2.10"]],
    [`lb.${ZONE}`, ["192.0.2.10"]],
    [`mid.${ZONE}`, ["192.0.2.11"]],
    [`small.${ZONE}`, ["192.0.2.20", "192.0.2.22", "192.0.2.24"]],
    [`vod.${ZONE}`, ["192.0.2.21"]],
  ])("answers %s with %j", async (name, addresses) => {
    expect((await resolver.resolve4(name)).sort()).toEqual(addresses);
  });

  it("knows no live edge when none runs, and answers nothing outside its zone", async () => {
    await expect(resolver.resolve4(`live.${ZONE}`)).rejects.toMatchObject({ code: "ENOTFOUND" });
    await expect(resolver.resolve4("example.com")).rejects.toBeDefined();
  });
});
