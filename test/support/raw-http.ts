import { connect } from "node:net";

/**
 * HTTP/1.1 as a client that does not play along writes it: bytes on a socket, whatever they are,
 * and what the service answers read until it closes the connection. fetch cannot send a malformed
 * request line, a header without a colon or a request without Host; these can.
 */

/** How long an exchange waits for the service to close the connection before closing it itself. */
export const EXCHANGE_WAIT_MS = 10_000;

export interface Exchange {
  /** What the service sent, as Latin-1 text. */
  text: string;
  /** Whether the service closed the connection (else the wait ran out and the client closed it). */
  closed: boolean;
}

/** A response as it came on the wire: its status, its headers by lowercase name, and its body. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Opens a connection to `target`'s URL, writes `bytes` and nothing more, and reads until the
 * service closes it or `waitMs` passes (then closes it itself).
 */
export function exchange(target: { url: string }, bytes: string, waitMs = EXCHANGE_WAIT_MS): Promise<Exchange> {
  const { hostname, port } = new URL(target.url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closed: false });
    }, waitMs);
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closed: true });
    });
    socket.write(bytes, "latin1");
  });
}

/** A request's head as a raw client writes it; each header a line, in the order given. */
export function head(method: string, path: string, headers: [string, string][]): string {
  return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers.map(([name, value]) => `${name}: ${value}\r\n`).join("")}\r\n`;
}

/** The responses in `text`, in order (one ends where the next's status line begins: none of these bodies holds one). */
export function responsesIn(text: string): string[] {
  return text.split(/(?=HTTP\/1\.1 \d{3} )/).filter((response) => response !== "");
}

/** The status lines of the responses in `text`, in order. */
export function statusLines(text: string): string[] {
  return responsesIn(text).map((response) => response.slice(0, response.indexOf("\r\n")));
}

/** One response's text (of a body sent whole, with Content-Length) as its parts. */
export function parseResponse(response: string): RawResponse {
  const end = response.indexOf("\r\n\r\n");
  const [statusLine, ...lines] = response.slice(0, end).split("\r\n");
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]));
  return { status: Number(statusLine!.split(" ")[1]), headers, body: response.slice(end + 4) };
}
