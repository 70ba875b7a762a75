import { createHmac, timingSafeEqual } from "node:crypto";
import { InvalidArgumentsError } from "../errors.ts";

/**
 * How an instance manager's report is authenticated (ARCHITECTURE.md "PoP loop"). Each send
 * attempt carries two headers:
 *
 *   x-switch-vaas-timestamp: <unix seconds at the attempt, a decimal integer>
 *   x-switch-vaas-signature: sha256=<hex HMAC-SHA256, with the host's key, of "<timestamp>.<body>">
 *
 * The body is the exact JSON of the report; the timestamp is signed with it so that a recorded
 * request cannot be replayed later than the service's tolerance (the service decides the
 * tolerance against its own clock; this module has none). Shared by the agent that signs and the
 * service that verifies, so the two cannot drift apart.
 */

/** The header that carries a send attempt's signature. */
export const SIGNATURE_HEADER = "x-switch-vaas-signature";
/** The header that carries the signed unix time of a send attempt, in whole seconds. */
export const TIMESTAMP_HEADER = "x-switch-vaas-timestamp";

/** A timestamp as the header carries it: a non-negative integer without leading zeros or sign. */
const TIMESTAMP_TEXT = /^(?:0|[1-9][0-9]{0,15})$/;

/** The signature header's value: "sha256=" and the hex HMAC-SHA256 of `${timestampSeconds}.${body}`. */
export function sign(body: string, key: string, timestampSeconds: number): string {
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new InvalidArgumentsError([`timestampSeconds ${String(timestampSeconds)} is not a whole number of seconds since 1970; give Math.floor(milliseconds / 1000)`]);
  }
  return hmac(`${timestampSeconds}.${body}`, key);
}

/**
 * Checks a signature, in constant time, against the body and the timestamp header's text exactly
 * as received. False for a malformed timestamp (not a decimal integer in its one spelling), so
 * "0100" and "100" never share a signature. Whether the timestamp is recent enough is the
 * caller's decision.
 */
export function verify(body: string, signature: string, timestampText: string, key: string): boolean {
  if (!TIMESTAMP_TEXT.test(timestampText) || !Number.isSafeInteger(Number(timestampText))) {
    return false;
  }
  const expected = Buffer.from(hmac(`${timestampText}.${body}`, key));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

function hmac(message: string, key: string): string {
  return `sha256=${createHmac("sha256", key).update(message).digest("hex")}`;
}
