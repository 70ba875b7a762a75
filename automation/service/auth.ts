import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { InvalidArgumentsError } from "../../domain/errors.ts";

/**
 * Bearer tokens. Configuration holds only their SHA-256 digests, each with a subject and a role
 * (`subject:role:sha256hex`); a request's token is hashed and looked up. No tokens configured means
 * no access. A token is 32 random bytes, so a plain digest is as strong as a slow hash would be.
 */

export const ROLES = ["organizer", "admin"] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  subject: string;
  role: Role;
}

/** Tokens say what they are, so that a leaked one is easy to find with a secret scanner. */
const TOKEN_PREFIX = "svt_";
const SUBJECT = /^[A-Za-z0-9._@-]{1,64}$/;
const DIGEST = /^[0-9a-f]{64}$/;

export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

export function tokenDigest(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** The configuration line for a token: what SWITCH_API_TOKENS takes. */
export function tokenEntry(subject: string, role: Role, token: string): string {
  return `${subject}:${role}:${tokenDigest(token)}`;
}

export class TokenRegistry {
  private readonly byDigest: ReadonlyMap<string, Principal>;

  constructor(entries: readonly { digest: string; principal: Principal }[]) {
    this.byDigest = new Map(entries.map((entry) => [entry.digest, entry.principal]));
  }

  /** Parses `subject:role:sha256hex` entries, comma-separated; messages name the entry by position, never its digest. */
  static parse(text: string, source: string): TokenRegistry {
    const entries = text
      .split(",")
      .map((entry) => entry.trim())
      .filter((entry) => entry !== "");
    const problems: string[] = [];
    const parsed = entries.flatMap((entry, index) => {
      const [subject = "", role = "", digest = "", ...rest] = entry.split(":");
      const where = `${source} entry ${index + 1}`;
      if (rest.length > 0 || !SUBJECT.test(subject) || !(ROLES as readonly string[]).includes(role) || !DIGEST.test(digest)) {
        problems.push(`${where} is not subject:role:sha256hex (subject: letters, digits and ._@-; role: ${ROLES.join(" or ")}; the token's SHA-256 as 64 lowercase hex digits); make one with switchctl token create`);
        return [];
      }
      return [{ digest, principal: { subject, role: role as Role } }];
    });
    // One token, one principal: a digest listed twice would take whichever entry came last.
    const positions = new Map<string, number[]>();
    entries.forEach((entry, index) => {
      const digest = entry.split(":")[2] ?? "";
      if (DIGEST.test(digest)) {
        positions.set(digest, [...(positions.get(digest) ?? []), index + 1]);
      }
    });
    for (const repeated of positions.values()) {
      if (repeated.length > 1) {
        problems.push(`${source} entries ${repeated.join(" and ")} have the same token; a token has one subject and one role — keep one entry, or make another token with switchctl token create`);
      }
    }
    if (problems.length > 0) {
      throw new InvalidArgumentsError(problems);
    }
    return new TokenRegistry(parsed);
  }

  /** Who presents `authorization` ("Bearer <token>"), or undefined. */
  authenticate(authorization: string | undefined): Principal | undefined {
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
    const match = /^bearer ([\x21-\x7e]{1,512})$/i.exec(authorization ?? "");
    return match === null ? undefined : this.byDigest.get(tokenDigest(match[1]!));
  }
}

/**
 * The embedded default's tokens: the digests in `<dataDir>/tokens`, made on first run with one admin
 * token, which is returned (to be printed once) and never stored.
 */
/**
 * The tokens of the embedded default: the file's, or on a first run one new admin token. A new
 * token is written only by `keep`, once the service is serving: a start refused before then (a
 * busy port, say) must not leave a file whose only token nobody was shown.
 */
export function embeddedTokens(path: string): { registry: TokenRegistry; created?: { token: string; keep: () => void } } {
  if (existsSync(path)) {
    return { registry: TokenRegistry.parse(readFileSync(path, "utf8").replaceAll("\n", ","), path) };
  }
  const token = newToken();
  const entry = tokenEntry("admin", "admin", token);
  const keep = () => {
    writeFileSync(path, `${entry}\n`, { mode: 0o600, flag: "wx" });
    chmodSync(path, 0o600);
  };
  return { registry: TokenRegistry.parse(entry, path), created: { token, keep } };
}
