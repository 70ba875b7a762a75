import { setTimeout as delay } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { EngineRecorder, problemOf, startTestService } from "../support/service.ts";
import { conferenceName } from "../../domain/contracts/conference.ts";

/**
 * A graceful stop (SIGINT/SIGTERM → RunningService.close): new work is refused, operations in
 * flight are cancelled through their AbortSignal (the local engine's CLI gets its graceful cancel)
 * and awaited, and the next start on the same data directory resumes them.
 */

const LJUBLJANA = { participants: [{ lat: 46.05, lon: 14.51 }] };

describe("graceful shutdown", () => {
  it("cancels a deployment in flight, waits for it, and the next start finishes it", async () => {
    const recorder = new EngineRecorder();
    let aborted: AbortSignal | undefined;
    const first = await startTestService({ wrapEngine: recorder.wrap });
    // The conference's up hangs until it is cancelled, as a long deployment would.
    recorder.faults.up.push(
      (call) =>
        new Promise((_resolve, reject) => {
          aborted = call.signal!;
          aborted.addEventListener("abort", () => reject(aborted!.reason as Error), { once: true });
        }),
    );
    const { id } = await first.create(LJUBLJANA);
    await first.waitForConference(id, ["deploying"]);

    await first.close();
    expect(aborted?.aborted).toBe(true);
    // Left as it was, for the next start: not failed, not cleaned up.
    expect(first.readStore((store) => store.conference(id))).toMatchObject({ state: "deploying" });
    expect(first.readStore((store) => store.unfinishedOperations())).toEqual([expect.objectContaining({ stack: conferenceName(id), kind: "up", state: "running" })]);
    expect(first.offline.locks()).toEqual([]);

    const second = await startTestService({ dataDir: first.dataDir, tokens: first.tokens });
    try {
      expect((await second.waitForConference(id, ["ready", "failed"])).state).toBe("ready");
      expect(second.readStore((store) => store.operations(conferenceName(id)))).toEqual([expect.objectContaining({ kind: "up", state: "succeeded", attempts: 2 })]);
    } finally {
      await second.close();
    }
  });

  it("refuses new conferences while it waits for what runs, saying why", async () => {
    const recorder = new EngineRecorder();
    const service = await startTestService({ wrapEngine: recorder.wrap });
    let release: (() => void) | undefined;
    // An up that takes its time to stop after its cancel, as the CLI's graceful cancel does.
    recorder.faults.up.push(
      (call) =>
        new Promise((_resolve, reject) => {
          call.signal!.addEventListener("abort", () => (release = () => reject(call.signal!.reason as Error)), { once: true });
        }),
    );
    const { id } = await service.create(LJUBLJANA);
    await service.waitForConference(id, ["deploying"]);
    const closing = service.close();
    while (release === undefined) {
      await delay(10);
    }
    const refused = await problemOf(await service.call("/v1/conferences", { method: "POST", body: JSON.stringify(LJUBLJANA) }), 409);
    expect(refused.detail).toBe("the service is shutting down; retry against its next instance");
    release();
    await closing;
  });
});
