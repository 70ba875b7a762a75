import { describe, expect, it } from "vitest";
import { runCli } from "../support/cli.ts";

/** Runs the command the way npm does. */
const place = (...args: string[]) => runCli("place.ts", ...args);

describe("npm run place", () => {
  it("ranks the paper's seven clusters for participants given as coordinates and IPs, reporting the ones it cannot place", async () => {
    const { stdout, code } = await place("193.2.1.66", "48.21,16.37", "10.1.2.3", "--last-n", "5", "--json");
    expect(code).toBe(0);
    const { participants, placement } = JSON.parse(stdout) as {
      participants: { given: string; lookup: { status: string }; placed: boolean }[];
      placement: { cluster: string; ranking: { cluster: string }[] };
    };
    expect(participants.map((p) => [p.given, p.lookup.status, p.placed])).toEqual([
      ["193.2.1.66", "located", true],
      ["48.21,16.37", "given", true],
      ["10.1.2.3", "private", false],
    ]);
    expect(placement.cluster).toBe("arnes-ljubljana");
    expect(placement.ranking).toHaveLength(7);
  });

  it("prints a readable ranking with the reasons for exclusions", async () => {
    const { stdout, code } = await place("35.68,139.69", "--expected", "40");
    expect(code).toBe(0);
    expect(stdout).toContain("needs");
    expect(stdout).toContain("No cluster has room for this conference.");
  });

  it("fails clearly when no participant can be located, with each one's reason", async () => {
    const { stderr, code } = await place("192.168.0.1");
    expect(code).toBe(1);
    expect(stderr.trim().split("\n")).toEqual([
      "none of the participants could be located; give coordinates (lat,lon) for at least one",
      "participant 192.168.0.1 is a private address, which says nothing about where the participant is; give its coordinates (lat,lon) instead",
    ]);
  });

  it("names the bad value of a flag", async () => {
    const { stderr, code } = await place("46,14", "--last-n=-4");
    expect(code).toBe(1);
    expect(stderr.trim()).toBe("--last-n -4 is below -1; use -1 for unlimited or a number of video streams");
  });
});

describe("npm run place usage", () => {
  it("explains an option it does not know, without a stack trace", async () => {
    const { stderr, code } = await place("46,14", "--lastn", "5");
    expect(code).toBe(2);
    expect(stderr).toContain('place: --lastn is not an option (an argument that starts with "-" goes after --)');
    expect(stderr).toContain("usage: npm run place");
    expect(stderr).not.toContain("    at ");
  });
});
