import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { IMAGE_ENVIRONMENT, ROLE_IMAGES, roleImageContexts } from "../../components/cdn-pop/images.ts";
import { nginxTest } from "../support/nginx.ts";

const SAMPLE: Record<string, string> = { POP_MID: "192.0.2.11:80", POP_STATUS_ALLOW: "192.0.2.0/24", POP_ORIGIN: "198.51.100.5:80" };

/** The variables the image's entrypoint hands to envsubst, as written in it. */
function substituted(entrypoint: string): string {
  return /envsubst '([^']+)'/.exec(entrypoint)![1]!;
}

describe("role images", () => {
  const contexts = roleImageContexts();

  it("has one per role, as the paper wrote one Dockerfile per role", () => {
    expect(contexts.map((context) => context.image)).toEqual([...ROLE_IMAGES]);
    expect(ROLE_IMAGES).toEqual(["edge-small", "edge-large", "edge-vod", "edge-live", "mid", "lb", "dns", "instance-manager"]);
  });

  it("copies only files its build context has", () => {
    for (const context of contexts.filter((candidate) => candidate.context === "files")) {
      for (const [, sources] of context.files.Dockerfile!.matchAll(/^COPY (.+) \S+$/gm)) {
        for (const source of sources!.split(" ")) {
          expect(Object.keys(context.files), `${context.image}: ${source}`).toContain(source);
        }
      }
    }
  });

  it("builds the instance manager from this repository's files", () => {
    const dockerfile = contexts.find((context) => context.image === "instance-manager")!.files.Dockerfile!;
    for (const [, sources] of dockerfile.matchAll(/^COPY (.+) \S+$/gm)) {
      for (const source of sources!.split(" ")) {
        expect(existsSync(join(import.meta.dirname, "..", "..", source)), source).toBe(true);
      }
    }
    expect(dockerfile).toContain("automation/instance-manager/main.ts");
  });

  it.each(contexts.filter((context) => "nginx.conf.template" in context.files).map((context) => [context.image, context] as const))(
    "%s renders, through the real envsubst its entrypoint runs, to a configuration nginx accepts",
    async (image, context) => {
      const variables = substituted(context.files["entrypoint.sh"]!);
      const rendered = execFileSync("envsubst", [variables], { input: context.files["nginx.conf.template"], env: { ...process.env, ...SAMPLE }, encoding: "utf8" });
      for (const [name] of Object.entries(image === "mid" ? IMAGE_ENVIRONMENT.mid : IMAGE_ENVIRONMENT.edge)) {
        expect(rendered).not.toContain(`\${${name}}`);
        expect(rendered).toContain(SAMPLE[name]);
      }
      // nginx's own variables are left for nginx.
      expect(rendered).toContain("$scheme$host$uri");
      const result = await nginxTest(rendered);
      expect(result.output).toContain("syntax is ok");
    },
  );

  it("stops a container whose environment lacks a variable, naming it", () => {
    const edge = contexts.find((context) => context.image === "edge-small")!;
    const checks = edge.files["entrypoint.sh"]!.split("\n").filter((line) => line.startsWith(": "));
    const script = `set -eu\n${checks.join("\n")}\necho started`;
    let failure = "";
    try {
      execFileSync("sh", ["-c", script], { env: { PATH: process.env.PATH, POP_MID: "192.0.2.11:80" }, encoding: "utf8", stdio: "pipe" });
    } catch (error) {
      failure = String((error as { stderr: string }).stderr);
    }
    expect(failure).toContain("POP_STATUS_ALLOW: set POP_STATUS_ALLOW");
  });
});
