import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conferenceList } from "../../automation/service/schemas.ts";
import { type TestService, problemOf, startTestService } from "../support/service.ts";

/**
 * Lists are pages: `limit` conferences newest first and a `next` link while more remain, so a
 * client reaches every conference however many there are (a list used to stop at 500).
 */

const LJUBLJANA = [{ lat: 46.05, lon: 14.51 }];
const CREATED = 7;

let service: TestService;
const ids: string[] = [];

beforeAll(async () => {
  service = await startTestService();
  for (let index = 0; index < CREATED; index++) {
    ids.push((await service.create({ participants: LJUBLJANA, expectedParticipants: 1 })).id);
  }
  // One of bob's, which alice's pages never show.
  await service.create({ participants: LJUBLJANA, expectedParticipants: 1 }, { token: service.tokens.bob });
}, 60_000);
afterAll(() => service?.close());

describe("listing conferences", () => {
  it("follows next links through every page, each conference exactly once, newest first", async () => {
    const seen: string[] = [];
    let path: string | undefined = "/v1/conferences?limit=3";
    let pages = 0;
    while (path !== undefined) {
      const response = await service.call(path);
      expect(response.status).toBe(200);
      const page = conferenceList.parse(await response.json());
      expect(page.conferences.length).toBeLessThanOrEqual(3);
      seen.push(...page.conferences.map((conference) => conference.id));
      path = page.next;
      pages++;
      expect(pages).toBeLessThanOrEqual(CREATED);
    }
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
  });

  it("keeps the state filter on every page", async () => {
    const first = conferenceList.parse(await (await service.call("/v1/conferences?limit=2&state=stopped")).json());
    expect(first).toEqual({ conferences: [] });
    await Promise.all(ids.map((id) => service.waitForConference(id, ["ready"])));
    const ready = conferenceList.parse(await (await service.call("/v1/conferences?limit=1&state=ready")).json());
    expect(ready.conferences.map((conference) => conference.state)).toEqual(["ready"]);
    expect(ready.next).toMatch(/^\/v1\/conferences\?state=ready&limit=1&cursor=[A-Za-z0-9_-]+$/);
  });

  it("refuses a cursor it did not make, naming the parameter", async () => {
    for (const cursor of ["nonsense!", Buffer.from('{"createdAt":"yesterday","id":"x"}').toString("base64url"), "e30"]) {
      const body = await problemOf(await service.call(`/v1/conferences?cursor=${encodeURIComponent(cursor)}`), 400);
      expect(body.errors).toEqual([{ field: "querystring.cursor", message: "is not a cursor; follow the `next` link of the page before" }]);
    }
  });
});
