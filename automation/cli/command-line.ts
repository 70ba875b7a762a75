/**
 * The command-line convention of every switch-vaas command (switchctl, preview, place, images,
 * cluster, bench): -h or --help, wherever it stands (after a subcommand too), prints the usage to
 * stdout and exits 0; a usage error prints "<command>: <what is wrong>", a blank line and the
 * usage to stderr and exits 2, as POSIX utilities do. Errors of another kind are the command's own.
 */
import { type ParseArgsOptionsConfig, parseArgs } from "node:util";

export interface CommandLine<Options extends ParseArgsOptionsConfig> {
  /** The npm script that runs the command, which starts every usage error, e.g. "switchctl". */
  name: string;
  /** The usage text, "usage: npm run <name> -- …". */
  usage: string;
  /** The command's options; -h/--help is added to them. */
  options: Options;
}

const HELP = { help: { type: "boolean", short: "h" } } as const;

/** The command line asks for something the command does not have, or lacks what it needs; one line. */
export class UsageError extends Error {}

/**
 * The command line, parsed with the command's options and every other argument a positional (in
 * `tokens` with their places); exits for -h/--help and for a command line that does not parse.
 */
export function parseCommandLine<Options extends ParseArgsOptionsConfig>(command: CommandLine<Options>, args: string[] = process.argv.slice(2)) {
  const config = { args, options: { ...command.options, ...HELP }, allowPositionals: true, tokens: true } as const;
  let parsed: ReturnType<typeof parseArgs<typeof config>>;
  try {
    parsed = parseArgs(config);
  } catch (error) {
    exitWithUsageError(command, [parseFailure(error, config)]);
  }
  if (parsed.tokens.some((token) => token.kind === "option" && token.name === "help")) {
    console.log(command.usage);
    process.exit(0);
  }
  return parsed;
}

/** Names as a choice, "a, b or c": what a usage error offers instead of an unknown name. */
export function alternatives(names: readonly string[]): string {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} or ${names.at(-1)!}`;
}

/** Prints each problem as a usage error of `command`, then its usage, and exits 2. */
export function exitWithUsageError(command: Pick<CommandLine<ParseArgsOptionsConfig>, "name" | "usage">, problems: readonly string[]): never {
  console.error(`${problems.map((problem) => `${command.name}: ${problem}`).join("\n")}\n\n${command.usage}`);
  process.exit(2);
}

/**
 * What parseArgs refused, in the convention's words. Its text for an unknown option closes a
 * quote it never opened ("… as in '-- \"--x\""), so that one is said anew; the option is found
 * by parsing again leniently, which never throws.
 */
function parseFailure(error: unknown, config: { args: string[]; options: ParseArgsOptionsConfig }): string {
  if (!(error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS"))) {
    throw error;
  }
  if (error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const { tokens } = parseArgs({ ...config, strict: false, allowPositionals: true, tokens: true });
    const unknown = tokens.find((token) => token.kind === "option" && !Object.hasOwn(config.options, token.name));
    if (unknown?.kind === "option") {
      return `${unknown.rawName} is not an option (an argument that starts with "-" goes after --)`;
    }
  }
  return error.message;
}
