/**
 * Kubernetes resource quantities ("1500m", "2", "4Gi", "1.5G", "5e3"), parsed exactly.
 *
 * The grammar is apimachinery's (k8s.io/apimachinery/pkg/api/resource/quantity.go): a decimal
 * number followed by a binary suffix (Ki…Ei), a decimal suffix (n, u, m, k, M, G, T, P, E) or a
 * decimal exponent (e3, E-2). Values are kept as exact fractions of BigInts and converted with
 * Kubernetes' own rounding: CPU up to whole millicores, memory up to whole bytes. (The one library
 * that parses these, @kubernetes/client-node, converts to floating point and brings a client's
 * worth of dependencies.)
 */

const QUANTITY = /^(?<number>\+?(?:\d+(?:\.\d*)?|\.\d+))(?<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

const BINARY_POWER: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL_EXPONENT: Record<string, number> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/** A non-negative quantity as the exact fraction numerator / denominator. */
interface Fraction {
  numerator: bigint;
  denominator: bigint;
}

function parseFraction(text: string): Fraction | undefined {
  const match = QUANTITY.exec(text.trim());
  if (match?.groups === undefined) {
    return undefined;
  }
  const [whole = "", fractional = ""] = (match.groups.number ?? "").replace("+", "").split(".");
  let numerator = BigInt(`${whole}${fractional}` || "0");
  let denominator = 10n ** BigInt(fractional.length);
  const suffix = match.groups.suffix ?? "";
  const binary = BINARY_POWER[suffix];
  const exponent = binary === undefined ? (DECIMAL_EXPONENT[suffix] ?? (suffix === "" ? 0 : Number(suffix.slice(1)))) : 0;
  if (binary !== undefined) {
    numerator *= 1024n ** BigInt(binary);
  }
  if (exponent >= 0) {
    numerator *= 10n ** BigInt(exponent);
  } else {
    denominator *= 10n ** BigInt(-exponent);
  }
  return { numerator, denominator };
}

function ceilingOf({ numerator, denominator }: Fraction): bigint {
  return (numerator + denominator - 1n) / denominator;
}

/** CPU in whole millicores, rounded up as Kubernetes does; undefined if `text` is not a quantity. */
export function parseCpuMillicores(text: string): number | undefined {
  const fraction = parseFraction(text);
  return fraction === undefined ? undefined : Number(ceilingOf({ numerator: fraction.numerator * 1000n, denominator: fraction.denominator }));
}

/** Memory in whole bytes, rounded up; undefined if `text` is not a quantity. */
export function parseMemoryBytes(text: string): number | undefined {
  const fraction = parseFraction(text);
  return fraction === undefined ? undefined : Number(ceilingOf(fraction));
}

const MEBIBYTE = 1024 * 1024;

/** "1500m". */
export function formatMillicores(millicores: number): string {
  return `${millicores}m`;
}

/** "512Mi" when the value is whole mebibytes, else plain bytes, so that parsing it back is exact. */
export function formatBytes(bytes: number): string {
  return bytes % MEBIBYTE === 0 ? `${bytes / MEBIBYTE}Mi` : String(bytes);
}
