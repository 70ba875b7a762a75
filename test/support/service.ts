import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newToken, tokenEntry } from "../../automation/service/auth.ts";
import { type RunningService, type ServiceOverrides, startService } from "../../automation/service/server.ts";

/**
 * The one way service tests start the automation service: in this process, on a real socket on
 * 127.0.0.1 (a free port), with a fresh data directory and three tokens — an admin and two
 * organizers — configured by digest, as an operator would.
 */

export interface TestService extends RunningService {
  dataDir: string;
  tokens: { admin: string; alice: string; bob: string };
  /** Everything the service printed. */
  printed: string[];
  /** fetch against the service with a token (default: alice's). */
  call: (path: string, init?: RequestInit & { token?: string }) => Promise<Response>;
}

export interface TestServiceOptions extends ServiceOverrides {
  /** Extra or replacing environment variables (SWITCH_ENGINE defaults to offline). */
  env?: Record<string, string>;
  /** Reuse a data directory (a restart). */
  dataDir?: string;
  tokens?: TestService["tokens"];
}

export async function startTestService(options: TestServiceOptions = {}): Promise<TestService> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "switch-service-"));
  const tokens = options.tokens ?? { admin: newToken(), alice: newToken(), bob: newToken() };
  const printed: string[] = [];
  const service = await startService(
    {
      SWITCH_ENGINE: "offline",
      SWITCH_DATA_DIR: dataDir,
      SWITCH_API_TOKENS: [tokenEntry("root", "admin", tokens.admin), tokenEntry("alice", "organizer", tokens.alice), tokenEntry("bob", "organizer", tokens.bob)].join(","),
      HOST: "127.0.0.1",
      PORT: "0",
      SWITCH_LOG_LEVEL: "silent",
      ...options.env,
    },
    { ...options, print: (text) => printed.push(text) },
  );
  const call = (path: string, init: RequestInit & { token?: string } = {}) => {
    const { token = tokens.alice, headers, ...rest } = init;
    return fetch(`${service.url}${path}`, {
      ...rest,
      headers: { authorization: `Bearer ${token}`, ...(rest.body === undefined ? {} : { "content-type": "application/json" }), ...(headers as Record<string, string> | undefined) },
    });
  };
  return { ...service, dataDir, tokens, printed, call };
}
