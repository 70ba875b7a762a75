import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";

const NGINX = "/usr/sbin/nginx";
const exec = promisify(execFile);

/** A prefix directory for one nginx: the config plus the logs, tmp and cache directories it uses. */
export function nginxPrefix(name: string, config: string): string {
  const prefix = mkdtempSync(join(tmpdir(), `pop-${name}-`));
  for (const directory of ["logs", "tmp", "cache"]) {
    mkdirSync(join(prefix, directory));
  }
  writeFileSync(join(prefix, "nginx.conf"), config);
  // Workers run unprivileged when the master is root (as in CI): let them write here.
  for (const directory of ["", "logs", "tmp", "cache"]) {
    chmodSync(join(prefix, directory), 0o777);
  }
  return prefix;
}

/** `nginx -t` on a generated config: the real parser's verdict. */
export async function nginxTest(config: string): Promise<{ ok: boolean; output: string }> {
  const prefix = nginxPrefix("test", config);
  try {
    const { stderr } = await exec(NGINX, ["-t", "-p", prefix, "-c", join(prefix, "nginx.conf")]);
    return { ok: true, output: stderr };
  } catch (error) {
    return { ok: false, output: (error as { stderr: string }).stderr };
  }
}

export interface RunningNginx {
  prefix: string;
  stop(): Promise<void>;
}

/** Starts nginx in the foreground on a generated config and waits until `port` accepts connections. */
export async function startNginx(name: string, config: string, port: number): Promise<RunningNginx> {
  const prefix = nginxPrefix(name, config);
  const child: ChildProcess = spawn(NGINX, ["-p", prefix, "-c", join(prefix, "nginx.conf"), "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) {
      throw new Error(`nginx ${name} exited: ${stderr}`);
    }
    if (await accepts(port)) {
      break;
    }
    if (attempt > 100) {
      child.kill("SIGKILL");
      throw new Error(`nginx ${name} did not listen on ${port}: ${stderr}`);
    }
    await delay(50);
  }
  return {
    prefix,
    stop: async () => {
      child.kill("SIGQUIT");
      await exited;
    },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** A port the kernel says is free now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

/** A plain static origin that logs every request with its Range header, for counting what reaches it. */
export function originConfig(port: number, root: string): string {
  return `worker_processes 1;
pid nginx.pid;
error_log logs/error.log warn;
events { worker_connections 256; }
http {
  log_format counted '$request_uri|$http_range';
  access_log logs/access.log counted;
  client_body_temp_path tmp/client;
  proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi;
  scgi_temp_path tmp/scgi;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; application/pdf pdf; image/png png; }
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`;
}
