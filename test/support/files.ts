import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Every file under `dir`, as bytes read as Latin-1 (binary files too: SQLite's pages, its WAL): what secret scans read. */
export function everyFile(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      files.set(path, readFileSync(path).toString("latin1"));
    }
  }
  return files;
}
