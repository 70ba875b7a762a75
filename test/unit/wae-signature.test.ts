import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify } from "../../domain/wae/signature.ts";
import { invalidArgumentsMessage } from "../support/validation.ts";

const timestamp = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

describe("report signatures", () => {
  it("travel in the headers the service reads", () => {
    expect([SIGNATURE_HEADER, TIMESTAMP_HEADER]).toEqual(["x-switch-vaas-signature", "x-switch-vaas-timestamp"]);
  });

  it('are HMAC-SHA256 of "<timestamp>.<body>", as openssl computes it', () => {
    // printf '%s' '1700000000.what do ya want for nothing?' | openssl dgst -sha256 -hmac Jefe
    expect(sign("what do ya want for nothing?", "Jefe", 1_700_000_000)).toBe("sha256=1cdd0650c8be1cb0974b1788d458b1e781206cfef59b85faafc582d2e182c57e");
  });

  it("agree with an HMAC of the joined string for any body, key and timestamp", () => {
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), timestamp, (body, key, seconds) => {
        expect(sign(body, key, seconds)).toBe(`sha256=${createHmac("sha256", key).update(`${seconds}.${body}`).digest("hex")}`);
      }),
    );
  });

  it("verify only the exact body and timestamp with the same key", () => {
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), fc.integer({ min: 0, max: 2 ** 40 }), (body, key, other, seconds) => {
        const signature = sign(body, key, seconds);
        const text = String(seconds);
        expect(verify(body, signature, text, key)).toBe(true);
        expect(verify(body, signature, text, `${key}${other}`)).toBe(false);
        expect(verify(`${body}${other}`, signature, text, key)).toBe(false);
        expect(verify(body, signature, String(seconds + 1), key)).toBe(false);
        expect(verify(body, signature.slice(0, -1), text, key)).toBe(false);
      }),
    );
  });

  // Each would otherwise sign a second spelling of a time, or a time that is not one.
  it.each(["", " 1700000000", "1700000000 ", "01700000000", "+1700000000", "-1", "1700000000.5", "1.7e9", "0x10", "１７", "99999999999999999"])(
    "refuse the malformed timestamp %j",
    (text) => {
      const key = "host-key-of-host1";
      // Signed over the very text, so only the timestamp check can refuse it.
      const signature = `sha256=${createHmac("sha256", key).update(`${text}.{}`).digest("hex")}`;
      expect(verify("{}", signature, text, key)).toBe(false);
    },
  );

  it("accept the smallest timestamp", () => {
    expect(verify("{}", sign("{}", "k", 0), "0", "k")).toBe(true);
  });

  it.each([-1, 1.5, Number.NaN, 2 ** 53])("are not made for the timestamp %d", (seconds) => {
    expect(invalidArgumentsMessage(() => sign("{}", "k", seconds))).toBe(`timestampSeconds ${String(seconds)} is not a whole number of seconds since 1970; give Math.floor(milliseconds / 1000)`);
  });
});
