import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenRegistry } from "../../automation/service/auth.ts";
import { type CommandResult, runScript } from "../support/cli.ts";
import { type TestService, startTestService } from "../support/service.ts";

/** switchctl, run as `npm run switchctl` runs it, against a service on 127.0.0.1. */

let service: TestService;
const switchctl = (args: string[], token = service.tokens.alice): Promise<CommandResult> =>
  runScript("automation/cli/switchctl.ts", args, { env: { SWITCH_URL: service.url, SWITCH_TOKEN: token } });

beforeAll(async () => {
  service = await startTestService();
});
afterAll(() => service.close());

describe("switchctl", () => {
  it("creates a conference, watches it to ready with its link, lists it, stops it and watches it stop", async () => {
    const created = await switchctl(["create", "46.05,14.51", "193.2.1.66", "--last-n=5", "--watch"]);
    expect(created.code, created.stderr).toBe(0);
    const id = /^conference ([a-z0-9]+) placed$/m.exec(created.stdout)?.[1];
    expect(id).toBeDefined();
    expect(created.stdout).toMatch(/^cluster arnes-ljubljana: /m);
    expect(created.stdout).toMatch(/^ready: https:\/\/\S+$/m);

    const listed = await switchctl(["list", "--state", "ready"]);
    const [header, ...rows] = listed.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^ID +STATE +CLUSTER +URL +ERROR$/);
    expect(rows).toEqual([expect.stringMatching(new RegExp(`^${id} +ready +arnes-ljubljana +https://\\S+$`))]);
    // The columns line up under their names.
    expect(["ready", "arnes-ljubljana", "https://"].map((cell) => rows[0]!.indexOf(cell))).toEqual(["STATE", "CLUSTER", "URL"].map((name) => header!.indexOf(name)));

    const stopped = await switchctl(["stop", id!, "--watch"]);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout.trim().split("\n").at(-1)).toBe("stopped");
    expect((await switchctl(["get", id!])).stdout).toMatch(new RegExp(`^${id}  stopped`, "m"));
  });

  it("places without creating and lists the clusters with what is free", async () => {
    const placed = await switchctl(["place", "35.68,139.65", "--objective", "p95"]);
    expect(placed.code, placed.stderr).toBe(0);
    expect(placed.stdout).toMatch(/^cluster gcp-asia-northeast1: /m);
    const clusters = await switchctl(["clusters"]);
    expect(clusters.stdout).toMatch(/^engine: offline \(nothing is deployed\)$/m);
    expect(clusters.stdout.split("\n").filter((line) => /free \S+ CPU/.test(line))).toHaveLength(7);
  });

  it("makes a token whose configuration line the service accepts", async () => {
    const made = await switchctl(["token", "create", "carol", "--role", "admin"]);
    const token = /^token \(shown once; give it to carol\): (svt_\S+)$/m.exec(made.stdout)?.[1];
    const entry = /^add to SWITCH_API_TOKENS \(comma-separated\): (\S+)$/m.exec(made.stdout)?.[1];
    expect(TokenRegistry.parse(entry!, "test").authenticate(`Bearer ${token!}`)).toEqual({ subject: "carol", role: "admin" });
  });

  it.each([
    [["create"], 2, "switchctl: give at least one participant (lat,lon or an IP address)"],
    [["create", "46,14", "--objective", "fast"], 2, 'switchctl: --objective "fast" is not an objective; use mean, worstPair or p95'],
    [["create", "somewhere"], 2, 'switchctl: participant "somewhere" is neither lat,lon nor an IP address; give e.g. 46.05,14.51 or 193.2.1.66'],
    [["create", "95,14"], 1, "the service refused (400 Bad Request): body.participants.0.lat 95 is out of range; use decimal degrees between -90 and 90"],
    [["get", "nosuchconference"], 1, "the service refused (404 Not Found): conference nosuchconference does not exist"],
    [["launch"], 2, 'switchctl: "launch" is not a command; use create, list, get, watch, stop, place, clusters, token or pop'],
  ])("refuses %j with exit %i and says why", async (args, code, message) => {
    const result = await switchctl(args);
    expect(result.code).toBe(code);
    expect(result.stderr.split("\n")[0]).toBe(message);
  });

  it("refuses without a valid token, naming the fix", async () => {
    const result = await switchctl(["list"], "svt_not-a-token");
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe("the service refused (401 Unauthorized): give a valid bearer token in the Authorization header (Authorization: Bearer <token>)");
  });
});
