import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * How an instance manager's report is authenticated (ARCHITECTURE.md "PoP loop"): the HMAC-SHA256
 * of the exact body bytes with the host's key, sent in one header. Shared by the agent that signs
 * and the service that verifies, so the two cannot drift apart.
 */

/** The header that carries a report's signature. */
export const SIGNATURE_HEADER = "x-switch-vaas-signature";

/** The signature header's value: "sha256=" and the HMAC-SHA256 of the body, hex. */
export function sign(body: string, key: string): string {
  return `sha256=${createHmac("sha256", key).update(body).digest("hex")}`;
}

/** Checks a signature in constant time. */
export function verify(body: string, signature: string, key: string): boolean {
  const expected = Buffer.from(sign(body, key));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
