/**
 * The instance manager's process, as its container runs it: configuration from the environment
 * (validated), one report per period, a clean stop on SIGTERM.
 */
import { z } from "zod";
import { ROLES } from "../../domain/wae/model.ts";
import { InstanceManager } from "./agent.ts";

const environment = z.object({
  POP: z.string().min(1),
  HOST: z.string().min(1),
  PARENT_INTERFACE: z.string().min(1),
  LINK_MBPS: z.coerce.number().positive(),
  /** JSON: [{ "role": "small", "statusUrl": "http://192.0.2.20/pop-status" }, …] */
  EDGES: z.string().transform((text, ctx) => {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const parsed = z.array(z.object({ role: z.enum(ROLES), statusUrl: z.url() })).safeParse(json);
    if (!parsed.success) {
      ctx.addIssue({ code: "custom", message: 'must be JSON [{ "role": <edge role>, "statusUrl": <url> }]' });
      return z.NEVER;
    }
    return parsed.data;
  }),
  REPORT_ENDPOINT: z.url(),
  REPORT_KEY: z.string().min(16, { error: "must be at least 16 characters" }),
  PERIOD_SECONDS: z.coerce.number().int().positive().default(600),
  // Unset: the agent's defaults, this machine's own /proc.
  STAT_FILE: z.string().optional(),
  NET_DEV_FILE: z.string().optional(),
});

const parsed = environment.safeParse(process.env);
if (!parsed.success) {
  // Names the variables only; values (the key among them) never reach the log.
  console.error(`instance manager: bad environment: ${parsed.error.issues.map((issue) => `${issue.path.join(".")} ${issue.message}`).join("; ")}`);
  process.exit(2);
}
const env = parsed.data;
const manager = new InstanceManager({
  pop: env.POP,
  host: env.HOST,
  parentInterface: env.PARENT_INTERFACE,
  linkMbps: env.LINK_MBPS,
  edges: env.EDGES,
  endpoint: env.REPORT_ENDPOINT,
  key: env.REPORT_KEY,
  statFile: env.STAT_FILE,
  netDevFile: env.NET_DEV_FILE,
});

let stopping = false;
let running: Promise<void> = Promise.resolve();
const period = () => {
  running = manager.tick().catch((error: unknown) => console.error(`instance manager: ${error instanceof Error ? error.message : String(error)}`));
};
period();
const timer = setInterval(period, env.PERIOD_SECONDS * 1000);
process.on("SIGTERM", () => {
  if (stopping) {
    return;
  }
  stopping = true;
  clearInterval(timer);
  // Finish the period in flight; reports still waiting are lost with the process, as the
  // service would see from the gap in periods.
  void running.then(() => process.exit(0));
});
